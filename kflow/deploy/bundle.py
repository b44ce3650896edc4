"""The project bundle: its definitions as one content-addressed archive on its storage.

``kflow deploy`` packs ``kflow.toml``, the Python files it includes and the declared
local source inputs (files, folders with their files, glob matches: kflow.deploy.sources)
into a reproducible tar.gz (sorted, fixed times and owners: the same files give the same
bytes, so the same hash), and uploads it once to
``{root}/.kflow/deploy/bundle-SHA256.tar.gz``. In the pod, ``kflow run-bundle`` fetches
it, checks the hash and unpacks it before building: no image rebuild when definitions
change.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kflow.deploy.sources import source_files
from kflow.errors import UsageError
from kflow.storage import Storage

BUNDLE_MODE = 0o644


def bundle_location(root: str, sha256: str) -> str:
    return f"{root.rstrip('/')}/.kflow/deploy/bundle-{sha256}.tar.gz"


def definition_names(directory: Path, definitions: Iterable[Path]) -> list[str]:
    """Project-relative paths of the definition files (the one given with ``-f`` first, then
    what it includes); one outside the project folder cannot ship: a UsageError (exit 2)."""
    top = directory.resolve()
    names: list[str] = []
    for path in definitions:
        full = (path if path.is_absolute() else top / path).resolve()
        if not full.is_relative_to(top):
            raise UsageError(
                f"definition file {path} is outside the project folder {top}: "
                "the bundle cannot ship it",
                hint="move it into the project folder (or a folder below it) and include it "
                "from there",
            )
        names.append(full.relative_to(top).as_posix())
    return names


def project_files(
    directory: Path, definitions: Iterable[Path], inputs: Iterable[tuple[str, str]]
) -> list[str]:
    """Project-relative paths of what the bundle holds: the definition files, and every file
    the local source inputs ((instance id, location) pairs) are, hold or match; storage
    URLs are not copied. An input that cannot ship is a UsageError (exit 2)."""
    top = directory.resolve()
    chosen: dict[str, None] = {}
    for path in definitions:
        full = (path if path.is_absolute() else top / path).resolve()
        if full.is_file() and full.is_relative_to(top):
            chosen[full.relative_to(top).as_posix()] = None
    chosen.update(dict.fromkeys(source_files(top, inputs)))
    return sorted(chosen)


# Keys of fsspec storage options that carry credentials (s3fs key/secret/token, gcsfs
# token, adlfs account_key/sas_token/connection_string…): never written into a manifest.
_CREDENTIAL_KEYS = frozenset({"key", "secret", "token", "password", "username"})
_CREDENTIAL_PARTS = (
    "secret",
    "password",
    "token",
    "credential",
    "access_key",
    "account_key",
    "connection_string",
    "sas",
    "private",
)


def fetch_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The profile's storage options that the pod's command may carry to fetch the bundle
    (endpoint_url, client_kwargs…), and the names of the credential keys left out: those
    come from the storage Secret, as for every library."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in options.items():
        lower = str(key).lower()
        if lower in _CREDENTIAL_KEYS or any(part in lower for part in _CREDENTIAL_PARTS):
            dropped.append(str(key))
        elif isinstance(value, Mapping):
            inner, inner_dropped = fetch_options(value)
            kept[str(key)] = inner
            dropped.extend(f"{key}.{name}" for name in inner_dropped)
        else:
            kept[str(key)] = value
    return kept, dropped


def pack(directory: Path, names: Iterable[str]) -> bytes:
    """A tar.gz of ``names`` (relative to ``directory``) whose bytes depend on contents only."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(names):
            data = (directory / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), BUNDLE_MODE, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(storage: Storage, root: str, data: bytes) -> tuple[str, str]:
    """Put the bundle on storage unless it is there already; (its location, its sha256)."""
    sha = sha256_of(data)
    location = bundle_location(root, sha)
    if not storage.exists(location):  # content-addressed: the same name is the same bytes
        storage.write_atomic(location, data)
    return location, sha


def fetch(storage: Storage, location: str, sha256: str, into: Path) -> list[str]:
    """Download the bundle, check its hash, unpack it into ``into``; the files unpacked.

    A missing bundle or a wrong hash is a UsageError (exit 2): the deployment is wrong,
    retrying will not help.
    """
    data = storage.read_many([location])[location]
    if data is None:
        raise UsageError(f"bundle {location} does not exist", hint="run `kflow deploy` again")
    found = sha256_of(data)
    if found != sha256.lower():
        raise UsageError(
            f"bundle {location} has sha256 {found}, expected {sha256}",
            hint="the bundle was changed after `kflow deploy`; deploy again",
        )
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(into, filter="data")  # no absolute paths, links out or devices
        return tar.getnames()
