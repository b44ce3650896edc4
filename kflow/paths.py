"""Where a location really is, spelled one way, and whether it stays within the project's reach.

Pure string logic, no I/O: the graph's definition checks (exit 2 before anything
runs) and the storage deletion guard (the second, independent line of defence)
judge a location by the same rules (SPEC §1, "outputs never leave the project's reach").

A ``Place`` is a location's canonical form: scheme, bucket or host, normalised
absolute path. ``{root}/x.txt``, ``file://./data/x.txt`` and ``/abs/project/data/x.txt``
are one Place when ``{root}`` is ``data``.
"""

from __future__ import annotations

import posixpath
from bisect import bisect_left
from dataclasses import dataclass
from fnmatch import fnmatchcase

from kflow.model import is_normal_path

LOCAL = "file"
_LOCAL_SCHEMES = {"file", "local"}
_SAME_SCHEME = {"s3a": "s3", "gcs": "gs"}  # aliases fsspec serves with one filesystem
RECORDS = ".kflow"  # kflow's own records under {root}
MAX_SEGMENT = 255  # bytes in one file name (NAME_MAX on Linux and macOS)


@dataclass(slots=True)
class Place:
    """A canonical location: ``scheme`` ('file' for local disk), ``host`` (bucket; '' locally)
    and a normalised absolute ``path``. ``dotted`` says the spelling had '.' or '..' segments.

    Treat as immutable (not frozen: a graph check makes one per output, and frozen
    dataclasses are slow to make).
    """

    scheme: str
    host: str
    path: str
    dotted: bool = False

    def key(self) -> tuple[str, str, str]:
        return (self.scheme, self.host, self.path)

    def holds(self, other: Place) -> bool:
        """Whether ``other`` is this place or lies under it."""
        if (self.scheme, self.host) != (other.scheme, other.host):
            return False
        return other.path == self.path or other.path.startswith(self.path.rstrip("/") + "/")

    def within(self, other: Place) -> bool:
        """Whether this place lies strictly under ``other``."""
        return other.holds(self) and self.path != other.path

    def parents(self) -> list[Place]:
        """Every folder above this place, nearest first (not the place itself)."""
        found = []
        path = self.path
        while path not in ("/", ""):
            path = posixpath.dirname(path)
            found.append(Place(self.scheme, self.host, path))
        return found

    def __str__(self) -> str:
        return self.path if self.scheme == LOCAL else f"{self.scheme}://{self.host}{self.path}"


def place_of(location: str, project_dir: str) -> Place:
    """The canonical Place of a plain path, a ``file://`` URL or any ``scheme://`` URL.

    Relative local paths (and ``file://./x``) are relative to ``project_dir``, which must
    be absolute and normalised.
    """
    if "://" not in location:
        return _local(location, project_dir)
    scheme, _, rest = location.partition("://")
    scheme = scheme.lower()
    if scheme in _LOCAL_SCHEMES:
        return _local(rest, project_dir)
    host, _, key = rest.partition("/")
    segments = key.split("/")
    dotted = "." in segments or ".." in segments
    path = posixpath.normpath("/" + key) if key else "/"
    if path.startswith("//"):  # normpath keeps a leading '//'
        path = "/" + path.lstrip("/")
    return Place(_SAME_SCHEME.get(scheme, scheme), host, path, dotted)


def _local(path: str, project_dir: str) -> Place:
    if is_normal_path(path):  # the common case (planning sees 10,000s): no normpath needed
        full = path if path.startswith("/") else f"{project_dir.rstrip('/')}/{path}"
        return Place(LOCAL, "", full)
    dotted = any(part in (".", "..") for part in path.split("/"))
    if not path.startswith("/"):
        path = f"{project_dir}/{path}"
    full = posixpath.normpath(path)
    if full.startswith("//"):
        full = "/" + full.lstrip("/")
    return Place(LOCAL, "", full, dotted)


def segment_problem(text: str) -> str | None:
    """Why ``text`` cannot be one path segment (None when it can).

    A parameter value substituted into a path must not climb out of it or pass as an option.
    """
    if "/" in text:
        return "contains '/'"
    if "\0" in text:
        return "contains a NUL character"
    if text in (".", ".."):
        return f"is {text!r}"
    if text.startswith("-"):
        return "starts with '-'"
    if "*" in text or "?" in text or "[" in text or "]" in text:
        # the path would become a pattern: a check for it would match other files
        glob = sorted({c for c in text if c in "*?[]"})
        return f"contains the glob character(s) {' '.join(glob)}"
    if len(text) * 4 > MAX_SEGMENT and len(text.encode("utf-8", "surrogateescape")) > MAX_SEGMENT:
        return f"is longer than {MAX_SEGMENT} bytes (the file name limit)"
    return None


class Reach:
    """What a project may write and delete: under its folder or under ``{root}``, or an
    explicit remote URL of its own; never the project folder, ``{root}``, a folder above
    either, or kflow's records."""

    def __init__(self, project_dir: str, root: str):
        self.project = Place(LOCAL, "", posixpath.normpath(project_dir))
        self.root = place_of(root, self.project.path)
        self.records = Place(
            self.root.scheme, self.root.host, posixpath.join(self.root.path, RECORDS)
        )
        # The common case, answered by two prefix tests: a local place strictly under a
        # local {root} that is not above the project folder, and not in the records.
        simple = self.root.scheme == LOCAL and not self.root.holds(self.project)
        self._fast = (self.root.path.rstrip("/") + "/") if simple else None
        self._records_prefix = self.records.path + "/"

    def problem(self, place: Place) -> str | None:
        """Why ``place`` may not be an output (or be deleted as one); None when it may."""
        fast = self._fast
        if (
            fast is not None
            and place.scheme == LOCAL
            and place.path.startswith(fast)
            and not place.path.startswith(self._records_prefix)
            and place.path != self.records.path
        ):
            return None
        if place.key() == self.project.key():
            return "is the project folder itself"
        if place.key() == self.root.key():
            return "is {root} itself"
        if place.holds(self.project) or place.holds(self.root):
            return "holds the project folder or {root}"
        if self.records.holds(place):
            return "is inside kflow's records ({root}/.kflow)"
        if place.scheme == LOCAL:
            if place.within(self.project) or place.within(self.root):
                return None
            return "lies outside the project folder and {root}"
        if place.dotted and not place.within(self.root):
            return "climbs out with '.' or '..' segments"
        if place.path == "/":
            return "is a whole bucket"
        return None


def _is_wild(segment: str) -> bool:
    return "*" in segment or "?" in segment


def _segment_matches(pattern: str, segment: str) -> bool:
    return fnmatchcase(segment, pattern) if _is_wild(pattern) else segment == pattern


def _segments_meet(one: str, other: str) -> bool:
    if _is_wild(one) and _is_wild(other):
        return True
    if _is_wild(one):
        return fnmatchcase(other, one)
    return _segment_matches(other, one)


class PlacePattern:
    """A Place whose path segments may be wildcards (``*``, ``?``; ``**`` for any number of
    segments): a glob source input, or an input template with each parameter as a wildcard.

    ``touches(place)`` says whether deleting ``place`` could delete something that matches:
    the place matches, lies inside a match, or holds one.
    """

    __slots__ = ("host", "literal", "scheme", "segments", "text")

    def __init__(self, place: Place, text: str):
        self.scheme = place.scheme
        self.host = place.host
        self.segments = [s for s in place.path.split("/") if s]
        self.text = text
        # The folder every match lies in: the segments before the first wildcard.
        fixed: list[str] = []
        for segment in self.segments:
            if _is_wild(segment):
                break
            fixed.append(segment)
        self.literal = "/" + "/".join(fixed)

    def touches(self, place: Place) -> bool:
        if place.scheme != self.scheme or not _segment_matches(self.host, place.host):
            return False
        pattern = self.segments
        end = len(pattern)
        states = self._closure({0})
        for segment in (s for s in place.path.split("/") if s):
            if end in states:
                return True  # a match holds this place
            following: set[int] = set()
            for index in states:
                if index == end:
                    continue
                if pattern[index] == "**":
                    following.add(index)
                elif _segment_matches(pattern[index], segment):
                    following.add(index + 1)
            states = self._closure(following)
            if not states:
                return False
        return True  # the place matches, or some match lies under it

    def meets(self, other: PlacePattern) -> bool:
        """Whether a match of one could be, hold or lie inside a match of the other (judged
        segment by segment; two wildcards are taken to meet)."""
        if self.scheme != other.scheme or not _segments_meet(self.host, other.host):
            return False
        for mine, theirs in zip(self.segments, other.segments, strict=False):
            if mine == "**" or theirs == "**":
                return True
            if not _segments_meet(mine, theirs):
                return False
        return True

    def _closure(self, states: set[int]) -> set[int]:
        found = set(states)
        for index in sorted(states):
            while index < len(self.segments) and self.segments[index] == "**":
                index += 1
                found.add(index)
        return found


def _folders_above(path: str) -> list[str]:
    found = []
    while path not in ("/", ""):
        path = path.rpartition("/")[0] or "/"
        found.append(path)
    return found


class PatternIndex:
    """Many PlacePatterns, found by their literal folder so that a question about one place
    looks only at patterns whose literal folder is that place, above it or under it."""

    def __init__(self, patterns: list[PlacePattern]):
        self._by_literal: dict[tuple[str, str, str], list[PlacePattern]] = {}
        for pattern in patterns:
            key = (pattern.scheme, pattern.host, pattern.literal)
            self._by_literal.setdefault(key, []).append(pattern)
        self._sorted = sorted(self._by_literal)
        self._holders = {  # every folder strictly above a literal folder
            (scheme, host, folder)
            for scheme, host, path in self._by_literal
            for folder in _folders_above(path)
        }
        # Per folder, the patterns whose literal folder is above it: outputs share folders,
        # so planning 100,000s of outputs walks each folder's ancestry once.
        self._above_cache: dict[tuple[str, str, str], tuple[PlacePattern, ...]] = {}

    def _above(self, key: tuple[str, str, str]) -> tuple[PlacePattern, ...]:
        scheme, host, path = key
        if path in ("/", ""):
            return ()
        parent = (scheme, host, path.rpartition("/")[0] or "/")
        found = self._above_cache.get(parent)
        if found is None:
            found = (*self._by_literal.get(parent, ()), *self._above(parent))
            self._above_cache[parent] = found
        return found

    def touching(self, place: Place) -> PlacePattern | None:
        """A pattern a deletion of ``place`` could reach, or None."""
        key = place.key()
        mine = self._by_literal.get(key)
        above = self._above(key)
        if mine or above:
            candidates: list[PlacePattern] = [*(mine or ()), *above]
            for pattern in candidates:
                if pattern.touches(place):
                    return pattern
        if key not in self._holders:
            return None
        # Patterns whose literal folder lies under the place: the place holds their matches.
        prefix = place.path.rstrip("/") + "/"
        start = bisect_left(self._sorted, (place.scheme, place.host, prefix))
        under = self._sorted[start]  # there is one: the place holds a literal folder
        first: PlacePattern = self._by_literal[under][0]
        return first
