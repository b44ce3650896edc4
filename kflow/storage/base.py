"""What every storage backend answers: a Stamp per location, and the Backend protocol.

A backend works on *paths* in its own namespace (an absolute local path, or an
fsspec path such as ``bucket/key``); turning user-facing locations into paths and
routing them to the right backend is the job of :class:`kflow.storage.Storage`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import BinaryIO, NamedTuple, Protocol

HASH_CHUNK = 1 << 20


class Stamp(NamedTuple):
    """What storage says about one existing location, without reading its content.

    ``etag`` is the backend's content checksum (S3 ETag without quotes, GCS md5…)
    or None where the backend has none (local disk). ``is_dir`` marks a folder
    (or an S3 common prefix): it exists, but its stamp says nothing about content.
    A NamedTuple, not a dataclass: a plan makes one per location, by the ten thousand.
    """

    size: int
    mtime: float | None
    etag: str | None
    is_dir: bool = False

    def same_content(self, other: Stamp) -> bool | None:
        """True/False when the two stamps alone decide content identity, None when they can't.

        They decide when both carry an etag (objects) or when sizes differ. Local
        files have no etag: the caller compares content hashes (with an mtime
        shortcut of its own) when this returns None.
        """
        if self.is_dir or other.is_dir:
            return None if self.is_dir and other.is_dir else False
        if self.size != other.size:
            return False
        if self.etag is not None and other.etag is not None:
            return self.etag == other.etag
        return None


def sha256_stream(stream: BinaryIO) -> str:
    """The hex sha256 of everything left in ``stream``, read in bounded chunks."""
    digest = hashlib.sha256()
    while chunk := stream.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


class Backend(Protocol):
    """One storage namespace (local disk, or one fsspec filesystem).

    Every method takes backend paths and raises :class:`kflow.errors.StorageError`
    on any failure other than "this object does not exist", which each method
    answers in its own documented way.
    """

    def stat_many(self, paths: Iterable[str]) -> dict[str, Stamp | None]:
        """Stamps of ``paths`` (None if missing): remote, one listing per parent folder;
        local disk, one stat per path (a listing would cost as much)."""
        ...

    def list_folder(self, path: str) -> dict[str, Stamp]:
        """Direct children of ``path`` by name; {} if the folder does not exist."""
        ...

    def list_names_many(self, paths: Sequence[str]) -> dict[str, list[str]]:
        """Names of the direct children of each path ([] if missing), listed concurrently."""
        ...

    def read_many(self, paths: Iterable[str]) -> dict[str, bytes | None]:
        """Content of each path, None for a missing one."""
        ...

    def read_stamped(self, path: str) -> tuple[bytes, Stamp] | None:
        """Content and the Stamp of that very content (None if missing), for compare-and-swap."""
        ...

    def write_atomic(self, path: str, data: bytes) -> None:
        """Replace ``path`` so that a reader sees the old bytes or the new ones, never a mix."""
        ...

    def delete_many(self, paths: Iterable[str]) -> None:
        """Delete files; missing ones are ignored."""
        ...

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` only if absent, atomically; False if it already exists."""
        ...

    def replace_if_unchanged(self, path: str, data: bytes, expected: Stamp) -> bool:
        """Replace ``path`` only if its current stamp is ``expected``; False otherwise."""
        ...

    def content_hashes(self, paths: Iterable[str]) -> dict[str, str | None]:
        """Streaming sha256 of each file, None for a missing path or a folder."""
        ...

    def delete_trees(self, paths: Iterable[str]) -> None:
        """Delete files, and folders with everything under them; missing ones are ignored."""
        ...


def pick(info: Mapping[str, object], keys: Iterable[str]) -> object | None:
    """The first present, non-empty value among ``keys`` of a listing entry."""
    for key in keys:
        value = info.get(key)
        if value not in (None, ""):
            return value
    return None
