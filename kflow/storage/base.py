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
    (or an S3 prefix, or the files a glob matches): as ``Storage`` answers, its
    ``etag`` is a digest of its listing (see :func:`tree_stamp`); a backend's own
    ``stat_many`` answers a folder with no etag, to be completed by ``tree_stamps``.
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
            if not (self.is_dir and other.is_dir):
                return False
            return None if self.etag is None or other.etag is None else self.etag == other.etag
        if self.size != other.size:
            return False
        if self.etag is not None and other.etag is not None:
            return self.etag == other.etag
        return None


# Not part of a folder's content: what running Python code in it (or kflow's own
# atomic writes) leaves behind, which would make a source folder differ after each run.
IGNORED_IN_FOLDERS = ("__pycache__",)
IGNORED_SUFFIXES = (".pyc", ".kflow-tmp")
GLOB_MAGIC = ("*", "?")


def has_glob(location: str) -> bool:
    """Whether a location is a pattern (``lib/*.py``, ``data/**/x?.csv``) to stamp as a set."""
    return any(c in location for c in GLOB_MAGIC)


def glob_base(pattern: str) -> str:
    """The part of a pattern before its first wildcard component: matches are named from it."""
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        if has_glob(part):
            return "/".join(parts[:index])
    return pattern


def relative_to(path: str, base: str) -> str:
    """``path`` below ``base`` ('/'-separated), or ``path`` itself when it is not below."""
    base = base.rstrip("/")
    return path[len(base) + 1 :] if base and path.startswith(f"{base}/") else path


def tree_stamp(entries: Iterable[tuple[str, Stamp]]) -> Stamp | None:
    """The stamp of a folder (or a glob's matches) from its files: (relative name, stamp).

    Names and each file's size and etag (else mtime) make the digest, so adding,
    changing or deleting a file changes it. None when there is no file: an empty
    folder counts as missing, on every backend (S3 has no empty prefixes).
    """
    lines = []
    size = 0
    newest: float | None = None
    for name, stamp in entries:
        parts = name.split("/")
        if any(p in IGNORED_IN_FOLDERS for p in parts) or name.endswith(IGNORED_SUFFIXES):
            continue
        lines.append(f"{name}\t{stamp.size}\t{stamp.etag or repr(stamp.mtime)}")
        size += stamp.size
        if stamp.mtime is not None and (newest is None or stamp.mtime > newest):
            newest = stamp.mtime
    if not lines:
        return None
    digest = hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:32]
    return Stamp(size=size, mtime=newest, etag=f"tree-{digest}", is_dir=True)


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

    def tree_stamps(self, paths: Sequence[str]) -> dict[str, Stamp | None]:
        """Each folder's :func:`tree_stamp`, from one recursive listing per folder (concurrent
        where remote); None for a missing or empty folder."""
        ...

    def glob_stamps(self, patterns: Sequence[str]) -> dict[str, Stamp | None]:
        """Each pattern's matches (folders with all their files) as one :func:`tree_stamp`;
        None when nothing matches."""
        ...

    def list_names_many(self, paths: Sequence[str]) -> dict[str, list[str]]:
        """Names of the direct children of each path ([] if missing), listed concurrently."""
        ...

    def list_names_prefixed(self, path: str, prefixes: Sequence[str]) -> dict[str, list[str]]:
        """Names of ``path``'s direct children that start with each prefix ([] if none):
        one listing locally; on S3, one listing per prefix (concurrently), whatever the
        number of other children."""
        ...

    def read_many(self, paths: Iterable[str]) -> dict[str, bytes | None]:
        """Content of each path, None for a missing one."""
        ...

    def read_stamped(self, path: str) -> tuple[bytes, Stamp] | None:
        """Content and the Stamp of that very content (None if missing), for compare-and-swap."""
        ...

    def write_atomic(self, path: str, data: bytes, durable: bool = True) -> None:
        """Replace ``path`` so that a reader sees the old bytes or the new ones, never a mix;
        ``durable``: on disk before this returns (fsync), so that it survives a power loss."""
        ...

    def delete_many(self, paths: Iterable[str]) -> None:
        """Delete files; missing ones are ignored."""
        ...

    def move_many(self, moves: Mapping[str, str]) -> None:
        """Move each file (source → destination, replacing it); a missing source is skipped.
        Each destination appears whole or not at all; a folder left empty is removed."""
        ...

    def create_exclusive(self, path: str, data: bytes, durable: bool = True) -> bool:
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
