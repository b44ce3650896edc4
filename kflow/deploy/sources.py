"""The source inputs a bundle ships: every declared local source input, as the pod's load
will look for it (a file, a folder with its files, a glob's matches), or a refusal.

The bundle is the pod's only copy of the project folder: an input left out is a "source
input does not exist" (exit 2) in the cluster at every tick, so anything that cannot ship
(missing, outside the project folder, a link out of it, too big) is exit 2 at deploy time,
naming the task and the input, before anything is uploaded.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from kflow.errors import UsageError
from kflow.storage.base import IGNORED_IN_FOLDERS, IGNORED_SUFFIXES, has_glob
from kflow.storage.locations import LOCAL, local_path, scheme_of

# Source inputs ship with the definitions in one archive that every tick downloads: data
# belongs on storage (an output of a task, or an s3:// input), not in the bundle.
BUNDLE_MAX_BYTES = 64 * 1024 * 1024
STATE_FOLDER = ".kflow"  # the project's local records and logs: never an input's content


def source_files(directory: Path, inputs: Iterable[tuple[str, str]]) -> list[str]:
    """Project-relative names of the files that the local source inputs are, hold or match.

    ``inputs`` are (instance id, location) pairs. Names keep the path as written (a link
    inside the project ships its target's content under the link's name); a UsageError
    (exit 2) for an input that is missing, matches nothing, or lies or points outside.
    """
    top = os.path.realpath(directory)
    names: dict[str, None] = {}
    for user, location in inputs:
        if scheme_of(location) != LOCAL:
            continue  # on storage: the pod reads it from there
        where = local_path(location, top)
        if has_glob(location):
            matches = sorted(glob.glob(where, recursive=True))  # as the local stamp globs
            if not matches:
                raise _refuse(user, location, "matches no file")
        else:
            matches = [where]
        found: list[str] = []
        for match in matches:
            found.extend(_files(top, match, user, location))
        if not found:
            why = "matches no file" if has_glob(location) else "does not exist"
            raise _refuse(user, location, why + " (an empty folder counts as missing)")
        names.update(dict.fromkeys(found))
    return sorted(names)


def check_size(directory: Path, names: Iterable[str]) -> int:
    """The bundle's content in bytes, or a UsageError when it is too big to fetch per tick."""
    total = sum(os.path.getsize(directory / name) for name in names)
    if total > BUNDLE_MAX_BYTES:
        raise UsageError(
            f"the bundle would hold {total / 2**20:.0f} MiB of definitions and source inputs "
            f"(at most {BUNDLE_MAX_BYTES // 2**20} MiB): every tick downloads it",
            hint="keep large data on storage: make it an output of a task, or give the "
            "input as a storage URL (s3://…)",
        )
    return total


def _files(top: str, path: str, user: str, location: str) -> list[str]:
    """The files ``path`` is or holds (links followed inside the project), as names."""
    name = os.path.relpath(path, top)
    if name == ".." or name.startswith("../"):
        raise _refuse(user, location, "lies outside the project folder")
    _check_inside(top, path, user, location)
    if os.path.isfile(path):
        return [name]
    if not os.path.isdir(path):
        raise _refuse(user, location, "does not exist")
    found: list[str] = []
    seen = {os.path.realpath(path)}
    for folder, dirs, files in os.walk(path, followlinks=True):
        kept = []
        for sub in sorted(dirs):
            full = os.path.join(folder, sub)
            real = os.path.realpath(full)
            skipped = sub in IGNORED_IN_FOLDERS or (folder == top and sub == STATE_FOLDER)
            if skipped or real in seen:  # a link back up would loop for ever
                continue
            _check_inside(top, full, user, location)
            seen.add(real)
            kept.append(sub)
        dirs[:] = kept
        for file in sorted(files):
            full = os.path.join(folder, file)
            if file.endswith(IGNORED_SUFFIXES):
                continue
            _check_inside(top, full, user, location)
            if os.path.isfile(full):  # a dangling link or a socket is no content
                found.append(os.path.relpath(full, top))
    return found


def _check_inside(top: str, path: str, user: str, location: str) -> None:
    real = os.path.realpath(path)
    if real != top and not real.startswith(top.rstrip("/") + "/"):
        shown = os.path.relpath(path, top)
        what = "" if os.path.realpath(local_path(location, top)) == real else f" ({shown})"
        raise _refuse(user, location, f"is a link to {real}{what}, outside the project folder")


def _refuse(user: str, location: str, why: str) -> UsageError:
    return UsageError(
        f"{user}: source input {location!r} {why}: the bundle cannot ship it",
        hint="source inputs ship with the definitions: keep them in the project folder, "
        "or put the data on storage (a task's output, or an s3:// input)",
    )
