"""A report file the user names (``report -o``, ``build --junit``): checked before anything
is written, then written whole or not at all (a temporary file renamed over it)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from kflow.errors import UsageError


def check_output_path(option: str, path: Path, definitions: Iterable[Path] = ()) -> None:
    """Exit 2 when ``path`` is a folder, its folder does not exist, or it is one of the
    project's definition files (kflow never overwrites those)."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder, expected a file name")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    target = path.resolve()
    for definition in definitions:
        if definition.resolve() == target:
            raise UsageError(
                f"{option} {path}: is the project's definition file {definition}",
                hint="kflow never overwrites definition files: name another file",
            )


def write_output(option: str, path: Path, data: bytes, definitions: Iterable[Path] = ()) -> None:
    """Write ``data`` to ``path`` (see ``check_output_path``); any failure is exit 2 with
    the reason, and leaves no half-written file."""
    check_output_path(option, path, definitions)
    try:
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            with open(path, "wb") as f:  # /dev/null, a pipe: nothing to rename over
                f.write(data)
            return
        _replace(path, data)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write it: {exc.strerror or exc}") from None


def _replace(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.absolute().parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)  # as open() would have made it
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
