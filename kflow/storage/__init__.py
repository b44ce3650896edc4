"""The one interface kflow uses to talk to output storage (local disk or any fsspec URL).

Importing this package imports neither fsspec nor s3fs: a backend is built,
and its library imported, when a location of its scheme is first used.
"""

from kflow.storage.base import Stamp
from kflow.storage.storage import Storage, StorageOptions

__all__ = ["Stamp", "Storage", "StorageOptions"]
