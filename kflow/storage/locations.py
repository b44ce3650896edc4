"""Where a location string points: the local disk (as an absolute path) or an fsspec URL.

Locations arrive as task outputs read after template substitution:

- ``data/raw/x.csv`` (relative to the project folder), ``/tmp/x`` (absolute);
- ``file:///abs/x`` (absolute), ``file://./data/x`` or ``file://data/x``
  (relative to the project folder, not to the current directory: ``-C DIR``
  must behave as if kflow had started in DIR); ``local://`` is read the same way;
- any other ``scheme://...`` (``s3://bucket/key``, ``gs://``, ``memory://``…),
  handed to the fsspec filesystem registered for that scheme.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kflow.model import is_normal_path

LOCAL = "file"
LOCAL_SCHEMES = {"file", "local"}


@dataclass(frozen=True)
class Target:
    """A location routed to its backend: ``scheme`` ('file' for local disk) and a path in it."""

    scheme: str
    path: str


def scheme_of(location: str) -> str:
    """The URL scheme of ``location`` ('file' for plain paths), lower-cased."""
    if "://" not in location:
        return LOCAL
    scheme = location.split("://", 1)[0].lower()
    return LOCAL if scheme in LOCAL_SCHEMES else scheme


def local_path(location: str, project_dir: str) -> str:
    """The absolute, normalised local path for a plain path or a file:// URL.

    ``project_dir`` must be absolute and normalised.
    """
    path = location.split("://", 1)[1] if "://" in location else location
    if is_normal_path(path):
        return path if path.startswith("/") else f"{project_dir.rstrip('/')}/{path}"
    if not os.path.isabs(path):
        path = os.path.join(project_dir, path)
    # normpath, not realpath: a symlinked output folder must keep its own name.
    return os.path.normpath(path)


def split_parent(path: str) -> tuple[str, str]:
    """('parent', 'name') of a '/'-separated path, ignoring a trailing slash."""
    path = path.rstrip("/")
    parent, _, name = path.rpartition("/")
    return parent, name


def backend_problem(location: str) -> tuple[str, str] | None:
    """Why no installed backend can serve ``location``'s scheme, and the fix; None if one can.

    Asks fsspec's registry without opening anything (no network); imports the backend
    library only for schemes other than local disk and S3.
    """
    scheme = scheme_of(location)
    if scheme == LOCAL:
        return None
    extra = "s3" if scheme in ("s3", "s3a") else "gcs" if scheme in ("gs", "gcs") else None
    if scheme in ("s3", "s3a"):
        import importlib.util

        if importlib.util.find_spec("s3fs") is None:
            hint = "pip install 'kflow[s3]'"
            return f"the storage backend for {scheme}:// is not installed", hint
        return None
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency
        return "fsspec is not installed", "pip install fsspec"
    known = set(fsspec.available_protocols())
    if scheme not in known:
        return (
            f"unknown storage protocol '{scheme}://'",
            "use a local path, file://, s3:// or another fsspec protocol",
        )
    try:
        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as exc:
        hint = f"pip install 'kflow[{extra}]'" if extra else f"install the package for {scheme}"
        return f"the storage backend for {scheme}:// is not installed ({exc})", hint
    return None
