"""The load cache: a project's validated model and graph, kept between runs in ``.kflow/cache/``.

As ninja keeps ``.ninja_deps``, kflow keeps what does not change between runs: what the
definition files say, validated, and the graph the command line expands it to. An entry is
used only when everything that load read is as it was, so a cache never changes a result:

- the command line: the project file, ``--profile``, ``--param`` items, targets, the
  current and ``-C`` folders (error messages show paths relative to the current folder);
- kflow's version and its own core source files, Python's version, and the environment
  variables the load consults (``KFLOW_ALLOW_MEMORY_STORAGE``);
- TOML definitions (no Python file among them): every definition file's stamp (size,
  mtime, inode, ctime; its content hash too when it changed within two seconds of being
  read, where a stamp could miss a second edit) and what each ``include`` pattern matches;
- Python definitions: running ``kflow.py`` is the only sound way to know what it declares,
  so it always runs, and the entry is keyed on a hash of what it declared (with the line of
  each call). Definitions holding a function (a requirement parameter's lambda) or any
  object other than plain data are never kept: expanding the graph calls the function,
  and it may read anything then (an environment variable, a file, another module);
- the date, when the load read ``today`` or ``yesterday`` (a load that read ``now`` is not
  kept).

An entry that cannot be read (truncated, corrupt, from another version) is ignored and
replaced; entries are written to a temporary file and renamed, so a reader never sees half
of one, and only when the command ends without a usage or definition error (exit 2 writes
nothing). ``KFLOW_NO_CACHE=1`` neither reads nor writes the cache.
"""

from __future__ import annotations

import contextlib
import copyreg
import dataclasses
import datetime as dt
import hashlib
import io
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kflow.load.discover import Definitions

FOLDER = Path(".kflow") / "cache"
DISABLE = "KFLOW_NO_CACHE"
FORMAT = 1
KEEP = 16  # entries per project: one per command line (targets, params, profile)
ENVIRONMENT = ("KFLOW_ALLOW_MEMORY_STORAGE",)  # variables the load consults
_RACY_NS = 2_000_000_000  # a file changed this recently may change again with the same stamp
_KFLOW = Path(__file__).resolve().parents[1]
# kflow's own modules that make a project and its graph: an edited checkout of kflow
# (an editable install) must not reuse what older code made.
_CORE = (
    "load",
    "graph",
    "model.py",
    "templates.py",
    "params.py",
    "paths.py",
    "errors.py",
    "pyfunc.py",  # its bootstrap is the command of every decorated task
    "state.py",  # fingerprints and record keys, kept with the graph (kflow.plan.graph_hashes)
    "plan.py",
)

Stamp = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Entry:
    key: tuple[Any, ...]
    files: tuple[tuple[str, Stamp, str | None], ...]  # TOML: path, stamp, digest when racy
    globs: tuple[tuple[str, tuple[str, ...]], ...]
    declarations: str | None  # Python definitions: the hash of what they declared
    clock: tuple[str, str] | None  # (time zone, date) when the load read today's date
    payload: bytes


class LoadCache:
    """The cache entry for one command line's load of one project file."""

    def __init__(self, project_file: Path, inputs: tuple[Any, ...]):
        self.folder = project_file.parent / FOLDER
        self.enabled = os.environ.get(DISABLE, "") in ("", "0")
        self.key = (
            FORMAT,
            _kflow_version(),
            sys.version,
            _core_stamp(),
            os.getcwd(),
            str(project_file),
            inputs,
            tuple(os.environ.get(name) for name in ENVIRONMENT),
        )
        self.path = self.folder / f"load-{_digest(repr(self.key).encode())[:20]}.pickle"
        self._entry: _Entry | None = self._read() if self.enabled else None
        self._started = time.time_ns()
        self._declarations: str | None = None
        self._hashed = False

    def by_stamps(self) -> Any | None:
        """The cached value, when TOML definitions are unchanged by their stamps; else None."""
        entry = self._entry
        if entry is None or entry.declarations is not None or not entry.files:
            return None
        if not all(_unchanged(path, stamp, digest) for path, stamp, digest in entry.files):
            return None
        if not all(_matches(pattern) == matches for pattern, matches in entry.globs):
            return None
        return self._value(entry)

    def by_declarations(self, definitions: Definitions) -> Any | None:
        """The cached value, when Python definitions declared what they did before; else None.

        TOML-only definitions answer None (``by_stamps`` judged them)."""
        if not _has_python(definitions):
            return None
        self._declarations = _declared(definitions)
        self._hashed = True
        entry = self._entry
        if entry is None or self._declarations is None:
            return None
        if entry.declarations != self._declarations:
            return None
        return self._value(entry)

    def store(self, definitions: Definitions, value: Any, clock: set[str], timezone: str) -> None:
        """Keep ``value`` (made from ``definitions``) for the next run; never fails."""
        if not self.enabled or "time" in clock:
            return
        try:
            entry = self._entry_for(definitions, value, clock, timezone)
        except Exception:  # a value that cannot be kept is made again next time
            return
        if entry is not None:
            _PENDING.append((self, entry))

    def _entry_for(
        self, definitions: Definitions, value: Any, clock: set[str], timezone: str
    ) -> _Entry | None:
        date = None
        if "date" in clock:
            date = (timezone, _today(timezone))
            if date[1] != _today(timezone, self._started):
                return None  # midnight passed during the load
        if _has_python(definitions):
            if not self._hashed:
                self._declarations = _declared(definitions)
            if self._declarations is None:
                return None
            payload = _dumps(value)
            return _Entry(self.key, (), (), self._declarations, date, payload)
        # The text each file had when parsed: a file changed after it was read has a recent
        # mtime, so it is "racy", and its digest (of the text parsed) tells on the next run.
        texts = {str(s.path): s.text for s in definitions.doc.sources.values()}
        files = []
        for path in _files_of(definitions):
            stamp = _stamp(path)
            text = texts.get(path)
            if stamp is None or text is None:
                return None
            racy = stamp[1] >= self._started - _RACY_NS
            files.append((path, stamp, _digest(text.encode()) if racy else None))
        return _Entry(self.key, tuple(files), definitions.globs, None, date, _dumps(value))

    def _value(self, entry: _Entry) -> Any | None:
        if entry.clock is not None and _today(entry.clock[0]) != entry.clock[1]:
            return None
        try:
            return pickle.loads(entry.payload)
        except Exception:  # unreadable: made again, and the entry replaced
            return None

    def _read(self) -> _Entry | None:
        try:
            with open(self.path, "rb") as stream:
                entry = pickle.load(stream)
        except Exception:  # missing, truncated, corrupt or foreign: ignored
            return None
        if not isinstance(entry, _Entry) or entry.key != self.key:
            return None
        return entry

    def write(self, entry: _Entry) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # A temporary file renamed into place: readers see the old entry or the new one whole,
        # and of two kflow processes writing at once, the last rename wins.
        fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".load-", suffix=".kflow-tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                pickle.dump(entry, stream, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _prune(self.folder, keep=self.path)


# Entries kept by this process, written when its command ends well: a command that exits 2
# (bad input) writes nothing, not even a cache entry.
_PENDING: list[tuple[LoadCache, _Entry]] = []


def finish(write: bool) -> None:
    """Write the entries this process kept (or forget them); a failed write is only slower."""
    pending = list(_PENDING)
    _PENDING.clear()
    for cache, entry in pending if write else ():
        try:
            cache.write(entry)
        except Exception:  # a cache that cannot be written is only slower
            continue


def _kflow_version() -> str:
    from kflow import __version__

    return __version__


def _core_stamp() -> str:
    stamps = []
    for name in _CORE:
        path = _KFLOW / name
        paths = sorted(path.glob("*.py")) if path.is_dir() else [path]
        for each in paths:
            stamps.append((each.name, _stamp(str(each))))
    return _digest(repr(stamps).encode())


def _stamp(path: str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _content_digest(path: str) -> str | None:
    try:  # read as the TOML reader reads it
        return _digest(Path(path).read_text(encoding="utf-8").encode())
    except (OSError, UnicodeDecodeError):
        return None


def _unchanged(path: str, stamp: Stamp, digest: str | None) -> bool:
    if _stamp(path) != stamp:
        return False
    return digest is None or _content_digest(path) == digest


def _matches(pattern: str) -> tuple[str, ...]:
    import glob

    return tuple(sorted(glob.glob(pattern, recursive=True)))


def _files_of(definitions: Definitions) -> list[str]:
    return list(dict.fromkeys(str(path) for path in definitions.files))


def _has_python(definitions: Definitions) -> bool:
    return any(path.suffix == ".py" for path in definitions.files)


def _today(timezone: str, now_ns: int | None = None) -> str:
    from kflow.params import zone

    seconds = (time.time_ns() if now_ns is None else now_ns) / 1e9
    return dt.datetime.fromtimestamp(seconds, zone(timezone)).date().isoformat()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- what Python definitions declared -------------------------------------------------


def _declared(definitions: Definitions) -> str | None:
    """The hash of a document (its values, where each was written, TOML texts); None when
    it holds anything but plain data: such definitions are neither taken from the cache
    nor kept in it.

    A function in the document (a requirement parameter's lambda) is called while the graph
    is expanded, and it may read anything at that moment: an environment variable, a file,
    another module's attribute or function. Neither its code nor its globals tell what it
    will return next time, so no graph made with one is kept. Other objects are refused
    alike: their ``__str__``, ``__eq__`` or ``__hash__`` is user code the load may call."""
    sources = [
        (prefix, str(s.path), s.display, s.fixed_line, s.text)
        for prefix, s in definitions.doc.sources.items()
    ]
    stream = io.BytesIO()
    try:
        _DeclarationPickler(stream).dump((definitions.doc.data, sources, definitions.globs))
    except Exception:  # a function, an object of the user's, or what pickle cannot write
        return None
    return _digest(stream.getvalue())


# Exact types only: a subclass (an IntEnum, a str with its own __str__) is user code.
_PLAIN: tuple[type, ...] = (set, frozenset, dt.date, dt.datetime, dt.time, dt.timedelta)
_PLAIN += (type(None), bool, int, float, str, bytes, tuple, list, dict)


class _NotPlain(Exception):
    """A value that is not plain data: the load may run its code."""


class _DeclarationPickler(pickle.Pickler):
    """Pickles a document of plain data; raises _NotPlain on anything else."""

    def __init__(self, stream: io.BytesIO):
        super().__init__(stream, protocol=pickle.HIGHEST_PROTOCOL)

    def reducer_override(self, obj: Any) -> Any:
        # By identity, as a user's class may define __eq__ and __hash__ (even its metaclass).
        # A date pickles as its class and bytes: the class is met here too. A datetime's
        # time zone is an object: refused.
        if any(type(obj) is plain or obj is plain for plain in _PLAIN):
            return NotImplemented
        raise _NotPlain(repr(type(obj)))


# --- the cached value ------------------------------------------------------------------


class _ValuePickler(pickle.Pickler):
    """Pickles a value compactly: frozen dataclasses without the fields left at their default
    (a task has thirty, most unset)."""

    def __init__(self, stream: io.BytesIO):
        super().__init__(stream, protocol=pickle.HIGHEST_PROTOCOL)
        self.dispatch_table = _COMPACT


def _compact(obj: Any) -> tuple[Any, ...]:
    """A frozen dataclass without the fields left at their plain default: those are class
    attributes, which an instance without them reads as well. Rebuilt by pickle itself."""
    cls = type(obj)
    defaults = _plain_defaults(cls)
    state = {
        name: value
        for name, value in obj.__dict__.items()
        if not _same(defaults.get(name, _ABSENT), value)
    }
    return (_NEWOBJ, (cls,), state)


_ABSENT = object()
# pickle writes a reduction by copyreg.__newobj__ as its NEWOBJ opcode: cls.__new__(cls), in C
_NEWOBJ = copyreg.__newobj__  # type: ignore[attr-defined]


def _same(default: object, value: object) -> bool:
    # 0 == False and 5 == 5.0, but a field keeps the type it was given
    return default is value or (type(default) is type(value) and default == value)


def _plain_defaults(cls: type) -> dict[str, Any]:
    # A field with a plain default is also a class attribute (dataclasses sets it), unlike
    # one with a default_factory: a fresh dict per object stays so.
    known = _DEFAULTS.get(cls)
    if known is None:
        known = _DEFAULTS[cls] = {
            f.name: f.default
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING and getattr(cls, f.name, f) is f.default
        }
    return known


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _compact_table() -> dict[type, Callable[[Any], tuple[Any, ...]]]:
    from kflow.errors import Location
    from kflow.model import EnvVar, ParamSpec, Requirement, Resources, TaskSpec

    return {
        cls: _compact for cls in (TaskSpec, Requirement, Resources, Location, ParamSpec, EnvVar)
    }


_COMPACT = _compact_table()


def _dumps(value: Any) -> bytes:
    stream = io.BytesIO()
    _ValuePickler(stream).dump(value)
    return stream.getvalue()


def _prune(folder: Path, keep: Path) -> None:
    """Remove the oldest entries beyond KEEP (and temporary files left by a killed writer)."""
    with contextlib.suppress(OSError):
        entries = []
        for path in folder.iterdir():
            age = path.stat().st_mtime
            if path.suffix == ".kflow-tmp" and time.time() - age > 3600:
                path.unlink()
            elif path.suffix == ".pickle" and path != keep:
                entries.append((age, path))
        for _, path in sorted(entries, reverse=True)[KEEP - 1 :]:
            path.unlink()
