"""Storage: the one object kflow uses to talk to output storage, whatever the scheme.

It routes each location to the backend of its URL scheme (created on first
use, so s3fs is imported only once an s3:// location appears), batches the
work per backend, and answers keyed by the caller's own location strings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from kflow.errors import StorageError
from kflow.storage.base import Backend, Stamp, has_glob
from kflow.storage.failures import missing_backend
from kflow.storage.local import LocalBackend
from kflow.storage.locations import LOCAL, local_path, scheme_of

if TYPE_CHECKING:  # only for annotations: importing it would import fsspec
    from kflow.storage.fsspec_backend import FsspecBackend

T = TypeVar("T")
StorageOptions = Mapping[str, Mapping[str, Any]]


def _make_backend(
    scheme: str, options: Mapping[str, Any], location: str
) -> tuple[Backend, Callable[[str], str]]:
    """A backend for ``scheme`` and its location -> path function; heavy imports happen here."""
    make: Callable[[Mapping[str, Any], str, str], FsspecBackend]
    try:
        if scheme in ("s3", "s3a"):
            from kflow.storage.s3 import make_s3_backend as make
        else:
            from kflow.storage.fsspec_backend import make_fsspec_backend as make
    except ImportError as exc:  # s3fs (or fsspec) not installed
        raise missing_backend(scheme, exc, location) from exc
    backend = make(options, scheme, location)
    return backend, backend.path_of


class Storage:
    """Output storage of one project: local paths and fsspec URLs, possibly mixed.

    ``storage_options`` maps a URL scheme to the keyword arguments of its fsspec
    filesystem, e.g. ``{"s3": {"endpoint_url": "http://localhost:9000"}}``;
    credentials otherwise come from where each library looks (AWS_PROFILE,
    AWS_ENDPOINT_URL, ~/.aws…).

    A location that is a folder with files in it (or an S3 prefix with keys under
    it) exists: its Stamp has ``is_dir=True`` and an ``etag`` digest of its listing.
    """

    def __init__(
        self, project_dir: str | os.PathLike[str], storage_options: StorageOptions | None = None
    ):
        self.project_dir = os.path.abspath(project_dir)
        self.storage_options: dict[str, Mapping[str, Any]] = dict(storage_options or {})
        self._backends: dict[str, tuple[Backend, Callable[[str], str]]] = {
            LOCAL: (LocalBackend(), lambda location: local_path(location, self.project_dir))
        }
        self._lock = threading.Lock()

    @classmethod
    def for_root(
        cls,
        project_dir: str | os.PathLike[str],
        root: str,
        options: Mapping[str, Any] | None = None,
    ) -> Storage:
        """A Storage whose root URL's scheme gets ``options`` (a profile's storage_options)."""
        return cls(project_dir, {scheme_of(root): dict(options or {})})

    # -- routing --------------------------------------------------------------

    def _backend(self, location: str) -> tuple[Backend, Callable[[str], str]]:
        scheme = scheme_of(location)
        with self._lock:
            if scheme not in self._backends:
                options = self.storage_options.get(scheme, {})
                self._backends[scheme] = _make_backend(scheme, options, location)
            return self._backends[scheme]

    def _route(
        self, locations: Iterable[str]
    ) -> tuple[dict[str, tuple[Backend, dict[str, None]]], list[tuple[str, str, str]]]:
        """Backend paths by scheme, and each location's (location, scheme, path) in order."""
        # The planner sends 10,000s of locations: this loop stays free of locks and syscalls.
        groups: dict[str, tuple[Backend, Callable[[str], str], dict[str, None]]] = {}
        routed: list[tuple[str, str, str]] = []
        for location in locations:
            scheme = LOCAL if "://" not in location else scheme_of(location)
            group = groups.get(scheme)
            if group is None:
                group = groups[scheme] = (*self._backend(location), {})
            path = group[1](location)
            group[2][path] = None  # a dict as an ordered set: each path asked once
            routed.append((location, scheme, path))
        return {scheme: (backend, paths) for scheme, (backend, _, paths) in groups.items()}, routed

    def _batched(
        self, locations: Iterable[str], call: Callable[[Backend, list[str]], Mapping[str, T]]
    ) -> dict[str, T]:
        groups, routed = self._route(locations)
        answers = {
            scheme: call(backend, list(paths)) for scheme, (backend, paths) in groups.items()
        }
        return {location: answers[scheme][path] for location, scheme, path in routed}

    def _one(self, location: str) -> tuple[Backend, str]:
        backend, path_of = self._backend(location)
        return backend, path_of(location)

    # -- reading --------------------------------------------------------------

    def stat_many(self, locations: Iterable[str]) -> dict[str, Stamp | None]:
        """The Stamp of every location (None if missing), asked all at once.

        A folder (or prefix) is stamped by its files: names and each one's stamp, from
        one recursive listing, so a change inside is a change of the folder; an empty
        folder counts as missing. A location with ``*`` or ``?`` is a glob, stamped the
        same way as the set of what it matches (None when nothing matches).

        Cost on remote storage: one listing per folder or prefix holding several
        of the locations, concurrently; a location alone in its folder is
        stat'ed by itself (one HEAD on S3) so that its cost does not grow with
        its siblings. On local disk: one stat per location.
        """
        wanted = list(locations)
        if _plain_local(wanted):
            return self._stat_local(wanted)
        plain = [loc for loc in wanted if "*" not in loc and "?" not in loc]
        out = self._batched(plain, _stat_with_folders)
        if len(plain) < len(wanted):
            patterns = [loc for loc in wanted if has_glob(loc)]
            out.update(self._batched(patterns, lambda backend, paths: backend.glob_stamps(paths)))
        return out

    def _stat_local(self, locations: list[str]) -> dict[str, Stamp | None]:
        """``stat_many`` of plain local paths (what a plan of local files asks): no routing,
        no absolute path made per location. Folders are stamped by their files as ever."""
        backend = self._backends[LOCAL][0]
        assert isinstance(backend, LocalBackend)
        out = backend.stat_within(locations, self.project_dir)
        folders = {
            local_path(loc, self.project_dir): loc
            for loc, stamp in out.items()
            if stamp is not None and stamp.is_dir
        }
        if folders:
            for path, stamp in backend.tree_stamps(list(folders)).items():
                out[folders[path]] = stamp
        return out

    def stat(self, location: str) -> Stamp | None:
        """The Stamp of one location, None if it does not exist."""
        return self.stat_many([location])[location]

    def exists(self, location: str) -> bool:
        """Whether the location exists (a file, an object, or a folder)."""
        return self.stat(location) is not None

    def list_folder(self, location: str) -> dict[str, Stamp]:
        """The folder's direct children by name (sub-folders included); {} if it is missing."""
        backend, path = self._one(location)
        return backend.list_folder(path)

    def list_names_many(self, locations: Iterable[str]) -> dict[str, list[str]]:
        """The names of each folder's direct children ([] for a missing one), all at once.

        Cheaper than ``list_folder`` on local disk, where stamps cost a stat each;
        concurrent listings on remote storage.
        """
        return self._batched(locations, lambda backend, paths: backend.list_names_many(paths))

    def list_names_prefixed(self, location: str, prefixes: Sequence[str]) -> dict[str, list[str]]:
        """The names in folder ``location`` starting with each prefix: a few instances'
        records without listing everyone's on S3 (one listing per prefix there)."""
        backend, path = self._one(location)
        return backend.list_names_prefixed(path, prefixes)

    def list_names(self, location: str) -> list[str]:
        """The names of one folder's direct children; [] if it is missing."""
        return self.list_names_many([location])[location]

    def read_many(self, locations: Iterable[str]) -> dict[str, bytes | None]:
        """Content of each location, None for a missing one; concurrent on remote storage."""
        return self._batched(locations, lambda backend, paths: backend.read_many(paths))

    def read_bytes(self, location: str) -> bytes:
        """Content of one location; a missing one is a StorageError."""
        data = self.read_many([location])[location]
        if data is None:
            raise StorageError(f"cannot read {location}: it does not exist")
        return data

    def read_stamped(self, location: str) -> tuple[bytes, Stamp] | None:
        """Content and a Stamp of that same content (None if missing).

        Read a lease with this, decide from its content, then
        ``replace_if_unchanged(location, new, stamp)``: the swap fails if the
        lease changed in between, however the two calls interleave with others.
        """
        backend, path = self._one(location)
        return backend.read_stamped(path)

    def content_hashes(self, locations: Iterable[str]) -> dict[str, str | None]:
        """Hex sha256 of each file's content (streamed), None for a missing one or a folder."""
        return self._batched(locations, lambda backend, paths: backend.content_hashes(paths))

    def content_hash(self, location: str) -> str:
        """Hex sha256 of one file's content; a missing file or a folder is a StorageError."""
        digest = self.content_hashes([location])[location]
        if digest is None:
            raise StorageError(f"cannot hash {location}: it does not exist or is a folder")
        return digest

    # -- writing --------------------------------------------------------------

    def write_atomic(self, location: str, data: bytes, durable: bool = True) -> None:
        """Write all of ``data`` or nothing: readers never see a partial file or object.

        Local: a temp file in the same folder, fsync, rename (folders created as
        needed). Object stores: one PUT, atomic by nature. ``durable=False`` skips the
        fsyncs: as atomic for every reader, but a power loss may undo the write (for what
        a lost write only makes redo: logs, leases, success records).
        """
        backend, path = self._one(location)
        backend.write_atomic(path, data, durable)

    def delete_many(self, locations: Iterable[str]) -> None:
        """Delete files or objects; missing ones are ignored; batched where the backend can."""
        for backend, paths in self._route(locations)[0].values():
            backend.delete_many(list(paths))

    def move_many(self, moves: Mapping[str, str]) -> None:
        """Move files (source location → destination location, on the same backend); a
        missing source is skipped. Local: a rename each; object stores: copy, then delete."""
        pairs = list(moves.items())
        sources = self._route(src for src, _ in pairs)
        targets = self._route(dst for _, dst in pairs)[1]
        for scheme, (backend, _) in sources[0].items():
            backend.move_many(
                {
                    src_path: dst_path
                    for (_, src_scheme, src_path), (_, _, dst_path) in zip(
                        sources[1], targets, strict=True
                    )
                    if src_scheme == scheme
                }
            )

    def create_exclusive(self, location: str, data: bytes, durable: bool = True) -> bool:
        """Create ``location`` with ``data`` only if it does not exist, atomically.

        Of any number of racing callers, on any number of machines, exactly one
        gets True. Local: a hard link of a complete temp file; S3: a PUT with
        ``If-None-Match: *``.
        """
        backend, path = self._one(location)
        return backend.create_exclusive(path, data, durable)

    def replace_if_unchanged(self, location: str, data: bytes, expected: Stamp) -> bool:
        """Replace ``location`` only if its current Stamp equals ``expected`` (compare-and-swap).

        False when it changed, vanished, or ``expected`` cannot serve as a
        condition. S3 compares ETags (``If-Match``), so writing the same bytes
        again does not count as a change: put something unique (holder,
        counter, time) into data that must be told apart. Local files: a lock on
        the current version, and the new version's mtime always moves forward.
        """
        backend, path = self._one(location)
        return backend.replace_if_unchanged(path, data, expected)

    def delete_trees(self, locations: Iterable[str], keep: Iterable[str] = ()) -> None:
        """Delete files or objects, and folders with everything in them (on object stores:
        the object and every key under its prefix); missing ones are ignored.

        A location that is one of ``keep`` or holds one of them (the project folder,
        kflow's own records) is left alone, however it was named.
        """
        groups, _ = self._route(locations)
        kept = [k for k in keep if scheme_of(k) in groups]  # route no scheme only kept
        guarded = self._route(kept)[1]
        for scheme, (backend, paths) in groups.items():
            guard = [path for _, kept_scheme, path in guarded if kept_scheme == scheme]
            backend.delete_trees([p for p in paths if not any(_holds(p, g) for g in guard)])


def _plain_local(locations: list[str]) -> bool:
    """Whether every location is a local path ``posixpath.normpath`` leaves as it is, without
    a glob: checked over all of them at once, in C (see ``is_normal_path``)."""
    if not locations:
        return False
    text = "\n" + "\n".join(locations) + "\n"
    return not any(mark in text for mark in ("://", "*", "?", "\n\n", "\n.", "/.", "//", "/\n"))


def _stat_with_folders(backend: Backend, paths: list[str]) -> dict[str, Stamp | None]:
    stamps = backend.stat_many(paths)
    folders = [path for path, stamp in stamps.items() if stamp is not None and stamp.is_dir]
    if folders:
        stamps.update(backend.tree_stamps(folders))
    return stamps


def _holds(folder: str, path: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (backend paths of one scheme)."""
    folder = folder.rstrip("/")
    return path == folder or path.startswith(f"{folder}/") or not folder
