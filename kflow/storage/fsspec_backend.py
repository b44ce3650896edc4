"""Any fsspec filesystem: one listing per folder, concurrent on async filesystems.

Async filesystems (s3fs, gcsfs, http…) get every folder listing, read and
delete issued at once on fsspec's own event loop; synchronous ones (memory,
sftp…) get a small thread pool. Listings always bypass fsspec's listing cache:
the planner must see the storage as it is now, not as it was.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, TypeVar

import fsspec
from fsspec.asyn import sync

from kflow.errors import StorageError
from kflow.storage.base import (
    Stamp,
    glob_base,
    pick,
    relative_to,
    sha256_stream,
    tree_stamp,
)
from kflow.storage.failures import (
    is_missing,
    is_precondition_failed,
    missing_backend,
    storage_error,
)
from kflow.storage.locations import split_parent

T = TypeVar("T")
Item = TypeVar("Item")
Listing = list[dict[str, Any]]
# A folder to list for several wanted paths, or (None, [path]) to stat one path alone.
StatJob = tuple[str | None, list[str]]

CONCURRENCY = 32
MTIME_KEYS = ("LastModified", "mtime", "last_modified", "updated", "modified", "created")
# Content checksums first: GCS's etag also changes when only metadata does.
ETAG_KEYS = ("ETag", "md5Hash", "crc32c", "etag")
# Filesystems whose whole state lives in this process: a process-wide lock
# makes their conditional writes atomic.
IN_PROCESS = {"memory"}
_IN_PROCESS_LOCK = threading.Lock()


def _timestamp(value: object) -> float | None:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def stamp_of(info: Mapping[str, Any]) -> Stamp:
    """The Stamp of one fsspec ``info``/``ls(detail=True)`` entry."""
    if info.get("type") == "directory":
        return Stamp(size=0, mtime=None, etag=None, is_dir=True)
    etag = pick(info, ETAG_KEYS)
    return Stamp(
        size=int(info.get("size") or 0),
        mtime=_timestamp(pick(info, MTIME_KEYS)),
        etag=None if etag is None else str(etag).strip('"'),
    )


def entries_by_path(listing: Listing) -> dict[str, Stamp]:
    """Stamps by full path; a file wins over a same-named folder (S3 allows both)."""
    out: dict[str, Stamp] = {}
    for info in listing:
        name = str(info["name"]).rstrip("/")
        stamp = stamp_of(info)
        if name not in out or out[name].is_dir:
            out[name] = stamp
    return out


async def _gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T | BaseException]:
    """Run ``calls`` concurrently, at most CONCURRENCY at a time; exceptions are returned."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(call) for call in calls), return_exceptions=True)


def make_fsspec_backend(options: Mapping[str, Any], scheme: str, location: str) -> FsspecBackend:
    """A backend over a private instance of the fsspec filesystem registered for ``scheme``."""
    try:
        cls = fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as exc:
        raise missing_backend(scheme, exc, location) from exc
    try:
        # A private instance: fsspec's instance cache would share state across projects.
        fs = cls(**{**options, "skip_instance_cache": True})
    except Exception as exc:
        raise storage_error(exc, location, f"set up {scheme}:// storage for") from exc
    return FsspecBackend(fs, scheme)


class FsspecBackend:
    """One fsspec filesystem instance, used for every location of one URL scheme."""

    def __init__(self, fs: Any, scheme: str) -> None:
        self.fs = fs
        self.scheme = scheme
        self.is_async = bool(getattr(fs, "async_impl", False))

    # -- plumbing -------------------------------------------------------------

    def url(self, path: str) -> str:
        """The URL to show a user for a backend path."""
        return f"{self.scheme}://{path.lstrip('/')}"

    def path_of(self, location: str) -> str:
        """The backend path of a URL of this scheme."""
        return str(type(self.fs)._strip_protocol(location)).rstrip("/")

    def _run_all(
        self,
        items: Sequence[Item],
        acall: Callable[[Item], Awaitable[T]],
        call: Callable[[Item], T],
    ) -> list[T | BaseException]:
        """``acall``/``call`` on every item, concurrently; exceptions are returned, not raised."""
        if not items:
            return []
        if self.is_async:
            calls = [lambda item=item: acall(item) for item in items]
            results: list[T | BaseException] = sync(self.fs.loop, _gather, calls)
            return results

        def guarded(item: Item) -> T | BaseException:
            try:
                return call(item)
            except Exception as exc:
                return exc

        if len(items) == 1:
            return [guarded(items[0])]
        with ThreadPoolExecutor(max_workers=min(len(items), 8)) as pool:
            return list(pool.map(guarded, items))

    # -- listing --------------------------------------------------------------

    async def _alist(self, folder: str) -> Listing | None:
        """One listing of ``folder``, None if it does not exist."""
        self.fs.invalidate_cache(folder)
        try:
            listing: Listing = await self.fs._ls(folder, detail=True)
        except (FileNotFoundError, NotADirectoryError) as exc:
            if isinstance(exc, NotADirectoryError) or is_missing(exc):
                return None
            raise
        return listing

    def _list(self, folder: str) -> Listing | None:
        self.fs.invalidate_cache(folder)
        try:
            listing: Listing = self.fs.ls(folder, detail=True)
        except (FileNotFoundError, NotADirectoryError) as exc:
            if isinstance(exc, NotADirectoryError) or is_missing(exc):
                return None
            raise
        return listing

    def _list_many(self, folders: Sequence[str]) -> dict[str, Listing | None]:
        results = self._run_all(folders, self._alist, self._list)
        out: dict[str, Listing | None] = {}
        for folder, result in zip(folders, results, strict=True):
            if isinstance(result, BaseException):
                raise storage_error(result, self.url(folder), "list") from result
            out[folder] = result
        return out

    async def _ahead(self, path: str) -> Stamp | None:
        """The Stamp of one path by itself (no listing of its folder), None if missing."""
        self.fs.invalidate_cache(path)
        try:
            return stamp_of(await self.fs._info(path))
        except FileNotFoundError as exc:
            if is_missing(exc):
                return None
            raise

    def _head(self, path: str) -> Stamp | None:
        self.fs.invalidate_cache(path)
        try:
            return stamp_of(self.fs.info(path))
        except FileNotFoundError as exc:
            if is_missing(exc):
                return None
            raise

    def _info(self, path: str) -> Stamp | None:
        try:
            return self._head(path)
        except Exception as exc:
            raise storage_error(exc, self.url(path), "stat") from exc

    async def _astat_job(self, job: StatJob) -> dict[str, Stamp | None]:
        folder, wanted = job
        if folder is None:
            return {wanted[0]: await self._ahead(wanted[0])}
        stamps = entries_by_path(await self._alist(folder) or [])
        return {path: stamps.get(path.rstrip("/")) for path in wanted}

    def _stat_job(self, job: StatJob) -> dict[str, Stamp | None]:
        folder, wanted = job
        if folder is None:
            return {wanted[0]: self._head(wanted[0])}
        stamps = entries_by_path(self._list(folder) or [])
        return {path: stamps.get(path.rstrip("/")) for path in wanted}

    def stat_many(self, paths: Iterable[str]) -> dict[str, Stamp | None]:
        """One listing per folder with several wanted paths, all at once.

        A folder asked about for a single path gets a stat of that path instead
        (a HEAD on S3): its cost must not grow with the folder's history, as
        when today's cron run checks ``raw/{date}.csv`` next to 1,000 old dates.
        """
        by_folder: dict[str, list[str]] = defaultdict(list)
        for path in paths:
            by_folder[split_parent(path)[0]].append(path)
        jobs: list[StatJob] = []
        for folder, wanted in by_folder.items():
            if folder and len(wanted) > 1:
                jobs.append((folder, wanted))
            else:
                jobs.extend((None, [path]) for path in wanted)
        out: dict[str, Stamp | None] = {}
        for (to_list, wanted), result in zip(
            jobs, self._run_all(jobs, self._astat_job, self._stat_job), strict=True
        ):
            if isinstance(result, BaseException):
                action, target = ("list", to_list) if to_list else ("stat", wanted[0])
                raise storage_error(result, self.url(target), action) from result
            out.update(result)
        return out

    # -- folders and globs, stamped by their files ----------------------------

    async def _afind(self, path: str) -> dict[str, Any]:
        """Every file under ``path``: one recursive listing (on S3, one paginated LIST)."""
        self.fs.invalidate_cache(path)
        found: dict[str, Any] = await self.fs._find(path, detail=True)
        return found

    def _find(self, path: str) -> dict[str, Any]:
        self.fs.invalidate_cache(path)
        found: dict[str, Any] = self.fs.find(path, detail=True)
        return found

    def _files(self, found: Mapping[str, Any], base: str) -> list[tuple[str, Stamp]]:
        out = []
        for name, info in found.items():
            name = str(name)
            if info.get("type") == "directory" or name.endswith("/"):
                continue  # a folder marker object holds no content
            relative = relative_to(name, base)
            if relative != name or not base:
                out.append((relative, stamp_of(info)))
        return out

    def tree_stamps(self, paths: Sequence[str]) -> dict[str, Stamp | None]:
        folders = [path.rstrip("/") for path in paths]
        out: dict[str, Stamp | None] = {}
        results = self._run_all(folders, self._afind, self._find)
        for path, folder, result in zip(paths, folders, results, strict=True):
            if isinstance(result, BaseException):
                if is_missing(result):
                    out[path] = None
                    continue
                raise storage_error(result, self.url(folder), "list") from result
            out[path] = tree_stamp(self._files(result, folder))
        return out

    async def _aglob(self, pattern: str) -> dict[str, Any]:
        self.fs.invalidate_cache(glob_base(pattern))
        found: dict[str, Any] = await self.fs._glob(pattern, detail=True)
        return found

    def _glob(self, pattern: str) -> dict[str, Any]:
        self.fs.invalidate_cache(glob_base(pattern))
        found: dict[str, Any] = self.fs.glob(pattern, detail=True)
        return found

    def glob_stamps(self, patterns: Sequence[str]) -> dict[str, Stamp | None]:
        items = list(dict.fromkeys(patterns))
        results = self._run_all(items, self._aglob, self._glob)
        out: dict[str, Stamp | None] = {}
        for pattern, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                raise storage_error(result, self.url(pattern), "list") from result
            base = glob_base(pattern)
            folders = [str(n) for n, info in result.items() if info.get("type") == "directory"]
            files = self._files({n: i for n, i in result.items() if str(n) not in folders}, base)
            listings = self._run_all(folders, self._afind, self._find)  # matched folders' files
            for folder, listing in zip(folders, listings, strict=True):
                if isinstance(listing, BaseException):
                    raise storage_error(listing, self.url(folder), "list") from listing
                prefix = relative_to(folder.rstrip("/"), base)
                files.extend((f"{prefix}/{n}", s) for n, s in self._files(listing, folder))
            out[pattern] = tree_stamp(files)
        return out

    def list_folder(self, path: str) -> dict[str, Stamp]:
        folder = path.rstrip("/")
        listing = self._list_many([folder])[folder] or []
        return {
            split_parent(name)[1]: stamp
            for name, stamp in entries_by_path(listing).items()
            if name != folder
        }

    def list_names_many(self, paths: Sequence[str]) -> dict[str, list[str]]:
        folders = [path.rstrip("/") for path in paths]
        listings = self._list_many(folders)  # concurrently
        out: dict[str, list[str]] = {}
        for path, folder in zip(paths, folders, strict=True):
            entries = entries_by_path(listings[folder] or [])
            out[path] = [split_parent(name)[1] for name in entries if name != folder]
        return out

    def list_names_prefixed(self, path: str, prefixes: Sequence[str]) -> dict[str, list[str]]:
        names = self.list_names_many([path])[path]
        return {prefix: [n for n in names if n.startswith(prefix)] for prefix in prefixes}

    # -- reading --------------------------------------------------------------

    async def _aread(self, path: str) -> bytes | None:
        try:
            data: bytes = await self.fs._cat_file(path)
        except FileNotFoundError as exc:
            if is_missing(exc):
                return None
            raise
        return data

    def _read(self, path: str) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError as exc:
            if is_missing(exc):
                return None
            raise
        return data

    def read_many(self, paths: Iterable[str]) -> dict[str, bytes | None]:
        items = list(dict.fromkeys(paths))
        out: dict[str, bytes | None] = {}
        for path, result in zip(items, self._run_all(items, self._aread, self._read), strict=True):
            if isinstance(result, BaseException):
                raise storage_error(result, self.url(path), "read") from result
            out[path] = result
        return out

    def read_stamped(self, path: str) -> tuple[bytes, Stamp] | None:
        """Stamp first, then content: a compare-and-swap with a stamp older than the
        content it came with fails, which is the safe way round."""
        with _IN_PROCESS_LOCK if self.scheme in IN_PROCESS else nullcontext():
            stamp = self._info(path)
            if stamp is None or stamp.is_dir:
                return None
            data = self.read_many([path])[path]
        return None if data is None else (data, stamp)

    def _hash(self, path: str) -> str | None:
        try:
            with self.fs.open(path, "rb") as f:
                return sha256_stream(f)
        except (FileNotFoundError, IsADirectoryError) as exc:
            if is_missing(exc):
                return None
            raise

    def content_hashes(self, paths: Iterable[str]) -> dict[str, str | None]:
        # Streaming through file objects keeps memory bounded; threads give the concurrency.
        items = list(dict.fromkeys(paths))
        with ThreadPoolExecutor(max_workers=max(1, min(len(items), 8))) as pool:
            results = list(pool.map(self._guarded_hash, items))
        out: dict[str, str | None] = {}
        for path, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                raise storage_error(result, self.url(path), "hash") from result
            out[path] = result
        return out

    def _guarded_hash(self, path: str) -> str | BaseException | None:
        try:
            return self._hash(path)
        except Exception as exc:
            return exc

    # -- writing --------------------------------------------------------------

    def write_atomic(self, path: str, data: bytes, durable: bool = True) -> None:
        """One pipe_file: object stores make a single PUT (or a completed multipart) atomic."""
        try:
            self.fs.pipe_file(path, data)
        except Exception as exc:
            raise storage_error(exc, self.url(path), "write") from exc
        finally:
            self.fs.invalidate_cache(path)

    async def _adelete(self, path: str) -> None:
        try:
            await self.fs._rm_file(path)
        except FileNotFoundError as exc:
            if not is_missing(exc):
                raise

    def _delete(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError as exc:
            if not is_missing(exc):
                raise

    def delete_many(self, paths: Iterable[str]) -> None:
        items = list(dict.fromkeys(paths))
        for path, result in zip(
            items, self._run_all(items, self._adelete, self._delete), strict=True
        ):
            self.fs.invalidate_cache(path)
            if isinstance(result, BaseException):
                raise storage_error(result, self.url(path), "delete") from result

    def move_many(self, moves: Mapping[str, str]) -> None:
        # Object stores have no rename: copy (read, then one atomic PUT each), then delete.
        bodies = self.read_many(moves)
        present = {src: dst for src, dst in moves.items() if bodies.get(src) is not None}

        def copy(source: str) -> None:
            data = bodies[source]
            assert data is not None
            self.write_atomic(present[source], data)

        with ThreadPoolExecutor(max_workers=min(16, max(1, len(present)))) as pool:
            list(pool.map(copy, present))
        self.delete_many(present)

    def _require_in_process(self, path: str, action: str) -> None:
        if self.scheme not in IN_PROCESS:
            raise StorageError(
                f"cannot {action} {self.url(path)}: {self.scheme}:// offers no atomic "
                "conditional write that kflow knows how to use",
                hint="keep the project's storage on a local path, file:// or s3://",
            )

    def create_exclusive(self, path: str, data: bytes, durable: bool = True) -> bool:
        self._require_in_process(path, "create")
        with _IN_PROCESS_LOCK:
            if self._info(path) is not None:
                return False
            self.write_atomic(path, data)
            return True

    def replace_if_unchanged(self, path: str, data: bytes, expected: Stamp) -> bool:
        self._require_in_process(path, "replace")
        with _IN_PROCESS_LOCK:
            if self._info(path) != expected:
                return False
            self.write_atomic(path, data)
            return True

    # -- for subclasses ---------------------------------------------------------

    def _conditional(self, path: str, action: str, write: Callable[[], Any]) -> bool:
        """Run a conditional write: True if done, False if its precondition failed."""
        try:
            write()
        except Exception as exc:
            if is_precondition_failed(exc) or is_missing(exc):
                return False
            raise storage_error(exc, self.url(path), action) from exc
        finally:
            self.fs.invalidate_cache(path)
        return True

    async def _adelete_tree(self, path: str) -> None:
        try:
            await self.fs._rm(path, recursive=True)
        except FileNotFoundError as exc:
            if not is_missing(exc):
                raise

    def _delete_tree(self, path: str) -> None:
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError as exc:
            if not is_missing(exc):
                raise

    def delete_trees(self, paths: Iterable[str]) -> None:
        """Files, and folders with everything under them (``rm -r``), all at once."""
        items = list(dict.fromkeys(paths))
        results = self._run_all(items, self._adelete_tree, self._delete_tree)
        for path, result in zip(items, results, strict=True):
            self.fs.invalidate_cache(path)
            if isinstance(result, BaseException):
                raise storage_error(result, self.url(path), "delete") from result
