"""Local disk: the fast path (os.scandir, no fsspec) and POSIX atomicity.

Paths here are absolute and normalised (see locations.local_path).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import os
import secrets
import shutil
import stat as statmod
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress

from kflow.storage.base import (
    IGNORED_IN_FOLDERS,
    Stamp,
    glob_base,
    relative_to,
    sha256_stream,
    tree_stamp,
)
from kflow.storage.failures import storage_error

# Temporary files live next to their target (os.replace must not cross devices)
# and carry this suffix so that folder listings can skip them.
TMP_SUFFIX = ".kflow-tmp"
# Far above float rounding of st_mtime (~0.25 us today), far below anything a user sees.
MTIME_STEP_NS = 10_000


_DIR = Stamp(size=0, mtime=None, etag=None, is_dir=True)


def _stamp(st: os.stat_result) -> Stamp:
    if statmod.S_ISDIR(st.st_mode):
        return _DIR
    return Stamp(size=st.st_size, mtime=st.st_mtime, etag=None)


def _scan(folder: str) -> dict[str, os.DirEntry[str]]:
    """Entries of ``folder`` by name; {} when it does not exist or is not a folder."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name: entry for entry in entries}
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise storage_error(exc, folder, "list") from exc


def _entry_stamp(entry: os.DirEntry[str]) -> Stamp | None:
    try:
        return _stamp(entry.stat())  # follows symlinks: a link to an output is that output
    except FileNotFoundError:
        return None  # a dangling symlink, or deleted since the scan
    except OSError as exc:
        raise storage_error(exc, entry.path, "stat") from exc


def _raise(exc: OSError) -> None:
    raise exc


def _files_under(root: str) -> Iterator[tuple[str, Stamp]]:
    """Every file below ``root`` as (name relative to it, stamp): one walk of the tree."""
    try:
        for folder, dirs, files in os.walk(root, onerror=_raise):
            dirs[:] = [d for d in dirs if d not in IGNORED_IN_FOLDERS]
            prefix = "" if folder == root else f"{relative_to(folder, root)}/"
            for name in files:
                try:
                    st = os.stat(os.path.join(folder, name))  # a link counts as its target
                except FileNotFoundError:
                    continue  # a dangling link, or deleted since the walk
                if not statmod.S_ISDIR(st.st_mode):
                    yield f"{prefix}{name}", Stamp(st.st_size, st.st_mtime, None)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise storage_error(exc, root, "list") from exc


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable; not every filesystem allows it, which is fine.
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(path: str, data: bytes, durable: bool = True) -> str:
    """A fully written temp file in ``path``'s folder (created if needed), fsynced when
    ``durable``."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}{TMP_SUFFIX}")
    # 0o666 and the umask, like any file a user's tool would create (mkstemp gives 0600).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(tmp, flags, 0o666)
    except FileNotFoundError:  # the folder first (not before every write: a syscall each)
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _load_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[[int, bytes, int, bytes, int], int] = libc.renameat2
    except (OSError, AttributeError):  # not glibc 2.28+ (or not Linux)
        return None
    return function


_RENAMEAT2 = _load_renameat2() if sys.platform.startswith("linux") else None
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _rename_noreplace(source: str, destination: str) -> bool:
    """Rename unless ``destination`` exists (FileExistsError then); False when the system
    cannot (no renameat2, or a filesystem without it): the caller links instead. Unlike a
    link, it leaves no temp file to delete, and deleting costs ext4 on the next create."""
    if _RENAMEAT2 is None:
        return False
    flags = _RENAME_NOREPLACE
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(destination), flags):
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), destination)
        if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise OSError(code, os.strerror(code), destination)
    return True


def _move_mtime_past(tmp: str, old: os.stat_result) -> None:
    """Give the new version a later mtime than the version it replaces.

    File clocks tick coarsely (often 4 ms), so two same-sized versions written
    in one tick would carry equal stamps, and a compare-and-swap holding the
    older stamp would wrongly succeed. With mtimes that only move forward, a
    stamp never matches any later version.
    """
    if os.stat(tmp).st_mtime_ns <= old.st_mtime_ns:
        os.utime(tmp, ns=(old.st_atime_ns, old.st_mtime_ns + MTIME_STEP_NS))


@contextmanager
def _locked_current(path: str) -> Iterator[os.stat_result | None]:
    """Hold an exclusive flock on the file now at ``path``; yield its stat (None if absent).

    Every replace of a version first locks that version's inode, so two writers
    racing from the same version serialise; the loser then finds a new inode
    at ``path`` and its comparison fails.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_ino != os.fstat(fd).st_ino:
                continue  # replaced while we waited: lock the new version instead
            yield current
            return
        finally:
            os.close(fd)  # also releases the lock


class LocalBackend:
    """The project's local disk."""

    def stat_many(self, paths: Iterable[str]) -> dict[str, Stamp | None]:
        """One stat per path: on local disk a listing would cost as much and add bookkeeping."""
        return self.stat_within(paths, None)

    def stat_within(self, paths: Iterable[str], folder: str | None) -> dict[str, Stamp | None]:
        """``stat_many`` of paths relative to ``folder`` (absolute ones as they are), by the
        paths as given: the planner's 10,000s of project-relative paths are stat'ed with no
        absolute path made for each, and the kernel resolves the folder once."""
        fd = None
        if folder is not None:
            try:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:  # no such folder (yet): each path by its whole name
                joined = {path: os.path.join(folder, path) for path in paths}
                found = self.stat_many(joined.values())
                return {path: found[whole] for path, whole in joined.items()}
        out: dict[str, Stamp | None] = {}
        stat, is_dir, make = os.stat, statmod.S_ISDIR, Stamp._make
        try:
            for path in paths:
                try:
                    st = stat(path, dir_fd=fd)  # follows symlinks: a link to an output is it
                except (FileNotFoundError, NotADirectoryError):
                    out[path] = None  # missing, a dangling symlink, or below a file
                    continue
                except OSError as exc:
                    shown = path if folder is None else os.path.join(folder, path)
                    raise storage_error(exc, shown, "stat") from exc
                if is_dir(st.st_mode):
                    out[path] = _DIR
                else:
                    out[path] = make((st.st_size, st.st_mtime, None, False))
        finally:
            if fd is not None:
                os.close(fd)
        return out

    def list_folder(self, path: str) -> dict[str, Stamp]:
        out: dict[str, Stamp] = {}
        for name, entry in _scan(path).items():
            stamp = None if name.endswith(TMP_SUFFIX) else _entry_stamp(entry)
            if stamp is not None:
                out[name] = stamp
        return out

    def tree_stamps(self, paths: Iterable[str]) -> dict[str, Stamp | None]:
        return {path: tree_stamp(_files_under(path)) for path in paths}

    def glob_stamps(self, patterns: Iterable[str]) -> dict[str, Stamp | None]:
        out: dict[str, Stamp | None] = {}
        for pattern in patterns:
            base = glob_base(pattern)
            found: list[tuple[str, Stamp]] = []
            for match in sorted(glob.glob(pattern, recursive=True)):
                name = relative_to(match, base)
                stamp = self.stat_many([match])[match]
                if stamp is None:
                    continue
                if stamp.is_dir:
                    found.extend((f"{name}/{n}", s) for n, s in _files_under(match))
                else:
                    found.append((name, stamp))
            out[pattern] = tree_stamp(found)
        return out

    def list_names_many(self, paths: Iterable[str]) -> dict[str, list[str]]:
        # Names only: no stat per entry (a folder of 10,000 records lists in milliseconds).
        out: dict[str, list[str]] = {}
        for path in paths:
            try:
                names = os.listdir(path)
            except (FileNotFoundError, NotADirectoryError):
                names = []
            except OSError as exc:
                raise storage_error(exc, path, "list") from exc
            out[path] = [name for name in names if not name.endswith(TMP_SUFFIX)]
        return out

    def list_names_prefixed(self, path: str, prefixes: Sequence[str]) -> dict[str, list[str]]:
        names = self.list_names_many([path])[path]
        return {prefix: [n for n in names if n.startswith(prefix)] for prefix in prefixes}

    def read_many(self, paths: Iterable[str]) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for path in paths:
            try:
                with open(path, "rb") as f:
                    out[path] = f.read()
            except FileNotFoundError:
                out[path] = None
            except OSError as exc:
                raise storage_error(exc, path, "read") from exc
        return out

    def read_stamped(self, path: str) -> tuple[bytes, Stamp] | None:
        # Every kflow write replaces the inode, so what one open file holds never
        # changes: fstat and read through the same descriptor agree.
        try:
            with open(path, "rb") as f:
                stamp = _stamp(os.fstat(f.fileno()))
                return f.read(), stamp
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(exc, path, "read") from exc

    def write_atomic(self, path: str, data: bytes, durable: bool = True) -> None:
        try:
            tmp = _write_temp(path, data, durable)
            try:
                with suppress(FileNotFoundError):
                    _move_mtime_past(tmp, os.stat(path))
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
            if durable:
                _fsync_dir(os.path.dirname(path))
        except OSError as exc:
            raise storage_error(exc, path, "write") from exc

    def delete_many(self, paths: Iterable[str]) -> None:
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise storage_error(exc, path, "delete") from exc

    def move_many(self, moves: Mapping[str, str]) -> None:
        # A rename: atomic, and the file was made durable when it was written.
        made: set[str] = set()
        emptied: set[str] = set()
        for source, destination in moves.items():
            folder = os.path.dirname(destination)
            try:
                if folder not in made:
                    os.makedirs(folder, exist_ok=True)
                    made.add(folder)
                os.replace(source, destination)
            except FileNotFoundError:
                pass  # moved by a concurrent run already
            except OSError as exc:
                raise storage_error(exc, source, "move") from exc
            emptied.add(os.path.dirname(source))
        for folder in made:
            _fsync_dir(folder)
        for folder in emptied:
            with suppress(OSError):  # not empty: a concurrent writer, or files not ours
                os.rmdir(folder)

    def create_exclusive(self, path: str, data: bytes, durable: bool = True) -> bool:
        """Move a complete temp file into place only if nothing is there: atomic, and never
        visible half-written (a rename without replacing where the kernel has it, else a
        hard link)."""
        try:
            tmp = _write_temp(path, data, durable)
            try:
                if not _rename_noreplace(tmp, path):
                    os.link(tmp, path)
                    os.unlink(tmp)
            except FileExistsError:
                os.unlink(tmp)
                return False
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp)
                raise
            if durable:
                _fsync_dir(os.path.dirname(path))
            return True
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                return self._create_exclusive_no_links(path, data)
            raise storage_error(exc, path, "create") from exc

    def _create_exclusive_no_links(self, path: str, data: bytes) -> bool:
        # Filesystems without hard links: O_EXCL is still atomic, but a reader may
        # briefly see the file before its bytes are written.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        except OSError as exc:
            raise storage_error(exc, path, "create") from exc
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def replace_if_unchanged(self, path: str, data: bytes, expected: Stamp) -> bool:
        """Compare-and-swap under a lock on the current version's inode (see _move_mtime_past)."""
        try:
            with _locked_current(path) as current:
                if current is None or _stamp(current) != expected:
                    return False
                tmp = _write_temp(path, data)
                try:
                    _move_mtime_past(tmp, current)
                    os.replace(tmp, path)
                except BaseException:
                    with suppress(OSError):
                        os.unlink(tmp)
                    raise
            _fsync_dir(os.path.dirname(path))
            return True
        except OSError as exc:
            raise storage_error(exc, path, "replace") from exc

    def content_hashes(self, paths: Iterable[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for path in paths:
            try:
                with open(path, "rb") as f:
                    out[path] = sha256_stream(f)
            except (FileNotFoundError, IsADirectoryError):
                out[path] = None
            except OSError as exc:
                raise storage_error(exc, path, "hash") from exc
        return out

    def delete_trees(self, paths: Iterable[str]) -> None:
        for path in paths:
            try:
                if statmod.S_ISDIR(os.lstat(path).st_mode):
                    _remove_tree(path)
                else:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise storage_error(exc, path, "delete") from exc


def _ignore_missing(function: Callable[..., object], path: str, exc: BaseException) -> None:
    """shutil.rmtree's error handler: what is already gone is fine, anything else is not."""
    if not isinstance(exc, FileNotFoundError):
        raise exc


def _remove_tree(path: str) -> None:
    """rm -rf for one folder (not a symlink to one: that is unlinked like a file)."""
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_ignore_missing)
    else:
        shutil.rmtree(path, onerror=lambda f, p, info: _ignore_missing(f, p, info[1]))
