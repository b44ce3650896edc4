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
