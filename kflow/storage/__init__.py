"""The one interface kflow uses to talk to output storage (local disk or any fsspec URL).

``Storage(project_dir, {"s3": {"endpoint_url": ...}})`` answers, for batches of
locations (``data/x.csv``, ``/abs/x``, ``file://./data/x``, ``s3://bucket/key``,
``memory://…``, mixed freely): ``stat_many`` / ``stat`` / ``exists`` (one
listing per folder or prefix, concurrent on remote storage), ``list_folder``,
``list_names`` / ``list_names_many``,
``read_many`` / ``read_bytes``, ``content_hashes`` / ``content_hash``,
``write_atomic``, ``delete_many``, ``delete_trees``, and the lease primitives ``create_exclusive``
and ``replace_if_unchanged``. Every failure is a ``kflow.errors.StorageError``
naming the URL; a missing object is not a failure (None / False / ignored).

Importing this package imports neither fsspec nor s3fs: a backend is built,
and its library imported, when a location of its scheme is first used.
"""

from kflow.storage.base import Stamp
from kflow.storage.storage import Storage, StorageOptions

__all__ = ["Stamp", "Storage", "StorageOptions"]
