"""S3 (and S3-compatible stores such as MinIO) through s3fs, with what S3 adds.

What this adds to the generic fsspec backend:

- listings call s3fs's ``_lsdir`` directly: one paginated, delimited
  ListObjectsV2 per prefix, where ``_ls`` would list the parent again when a
  prefix is empty and cannot tell a missing prefix from a missing bucket;
- a lone key is stat'ed with one HEAD (plus one 1-key LIST when it is absent),
  whose error codes, unlike s3fs's ``_info``, still tell a missing bucket apart;
- conditional PUTs for leases: ``If-None-Match: *`` (create if absent) and
  ``If-Match: <etag>`` (replace if unchanged), which AWS S3, MinIO and moto honour;
- deletes in DeleteObjects batches of 1,000 keys.

This module is imported only when an s3:// location is first used.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import s3fs
from aiobotocore.session import AioSession
from botocore.utils import parse_timestamp as botocore_parse_timestamp
from fsspec.asyn import sync

from kflow.errors import StorageError
from kflow.storage.base import Stamp
from kflow.storage.failures import is_missing, storage_error
from kflow.storage.fsspec_backend import CONCURRENCY, FsspecBackend, Listing, stamp_of

DELETE_BATCH = 1000


def _default_config() -> dict[str, Any]:
    """botocore settings unless the user set their own.

    botocore's legacy retry mode makes a refused endpoint cost ~10 s and a
    silent one 5 x 60 s; AWS's "standard" mode with 3 attempts and a 10 s
    connect timeout still rides out throttling and blips, and fails in seconds.
    AWS_RETRY_MODE / AWS_MAX_ATTEMPTS in the environment win.
    """
    # Connections for as many prefixes as fsspec_backend lists at once (botocore: 10).
    config: dict[str, Any] = {"connect_timeout": 10, "max_pool_connections": CONCURRENCY}
    if not ({"AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"} & set(os.environ)):
        config["retries"] = {"mode": "standard", "max_attempts": 3}
    return config


def parse_timestamp(value: Any) -> dt.datetime:
    """botocore's timestamp parser, with a fast path for the ISO 8601 of S3 listings.

    botocore parses every ``LastModified`` through dateutil: about 0.3 ms a key, so
    most of a 10,000-object plan's CPU. ``datetime.fromisoformat`` gives the same
    value; anything else (HTTP dates in headers, epochs) goes to botocore's parser.
    """
    if isinstance(value, str) and value.endswith("Z") and "T" in value:
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    parsed: dt.datetime = botocore_parse_timestamp(value)
    return parsed


def _session(options: Mapping[str, Any]) -> AioSession:
    """The aiobotocore session s3fs would make, with the fast timestamp parser."""
    session = AioSession(**({"profile": options["profile"]} if "profile" in options else {}))
    factory = session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    return session


def make_s3_backend(options: Mapping[str, Any], scheme: str, location: str) -> S3Backend:
    """An S3 backend over a private s3fs instance built from ``storage_options``."""
    # A private instance (no fsspec instance cache) so that credentials and
    # options are read for this project, and no listing cache to go stale.
    config = {**_default_config(), **options.get("config_kwargs", {})}
    try:
        fs = s3fs.S3FileSystem(
            **{
                "use_listings_cache": False,
                **options,
                "session": options.get("session") or _session(options),
                "config_kwargs": config,
                "skip_instance_cache": True,
            }
        )
    except Exception as exc:
        raise storage_error(exc, location, "set up S3 storage for") from exc
    return S3Backend(fs, scheme)


class S3Backend(FsspecBackend):
    """Buckets and keys: ``path`` is ``bucket/key``."""

    async def _alist(self, folder: str) -> Listing | None:
        listing: Listing = await self.fs._lsdir(folder, refresh=True)
        return listing or None  # no key under the prefix: S3 has no empty folders

    def _list(self, folder: str) -> Listing | None:  # pragma: no cover - s3fs is async
        raise NotImplementedError

    async def _ahead(self, path: str) -> Stamp | None:
        bucket, key, _ = self.fs.split_path(path)
        if not key:
            return await super()._ahead(path)
        try:
            out = await self.fs._call_s3("head_object", Bucket=bucket, Key=key)
            return stamp_of({**out, "size": out.get("ContentLength", 0), "type": "file"})
        except Exception as exc:
            if not is_missing(exc):
                raise
        # A 404 to a HEAD may mean no key, or no bucket; one listing of at most
        # one key tells those apart, and spots a folder (a prefix with keys).
        listing = await self.fs._call_s3(
            "list_objects_v2", Bucket=bucket, Prefix=f"{key}/", Delimiter="/", MaxKeys=1
        )
        if listing.get("KeyCount") or listing.get("Contents") or listing.get("CommonPrefixes"):
            return Stamp(size=0, mtime=None, etag=None, is_dir=True)
        return None

    async def _aread(self, path: str) -> bytes | None:
        # max_concurrency=1: one GET, where s3fs would first HEAD the object to
        # decide whether to fetch it in parallel ranges.
        try:
            data: bytes = await self.fs._cat_file(path, max_concurrency=1)
        except FileNotFoundError as exc:
            if is_missing(exc):
                return None
            raise
        return data

    def read_stamped(self, path: str) -> tuple[bytes, Stamp] | None:
        """One GET: the body and the ETag, size and date that came with it."""
        bucket, key, _ = self.fs.split_path(path)

        async def get() -> tuple[bytes, Stamp]:
            response = await self.fs._call_s3("get_object", Bucket=bucket, Key=key)
            try:
                body: bytes = await response["Body"].read()
            finally:
                response["Body"].close()
            stamp = stamp_of(
                {"size": response.get("ContentLength", len(body)), **response, "type": "file"}
            )
            return body, stamp

        try:
            return sync(self.fs.loop, get)  # type: ignore[no-any-return]
        except Exception as exc:
            if is_missing(exc):
                return None
            raise storage_error(exc, self.url(path), "read") from exc

    def create_exclusive(self, path: str, data: bytes, durable: bool = True) -> bool:
        bucket, key, _ = self.fs.split_path(path)
        return self._conditional(
            path,
            "create",
            lambda: self.fs.call_s3(
                "put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*"
            ),
        )

    def replace_if_unchanged(self, path: str, data: bytes, expected: Stamp) -> bool:
        if expected.etag is None or expected.is_dir:
            return False  # only an object's ETag can be a condition
        bucket, key, _ = self.fs.split_path(path)
        return self._conditional(
            path,
            "replace",
            lambda: self.fs.call_s3(
                "put_object", Bucket=bucket, Key=key, Body=data, IfMatch=f'"{expected.etag}"'
            ),
        )

    def delete_many(self, paths: Iterable[str]) -> None:
        by_bucket: dict[str, list[str]] = defaultdict(list)
        for path in dict.fromkeys(paths):
            bucket, key, _ = self.fs.split_path(path)
            by_bucket[bucket].append(key)
            self.fs.invalidate_cache(path)
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), DELETE_BATCH):
                self._delete_batch(bucket, keys[start : start + DELETE_BATCH])

    def _delete_batch(self, bucket: str, keys: list[str]) -> None:
        # DeleteObjects reports success for keys that do not exist: missing is ignored.
        objects = [{"Key": key} for key in keys]
        try:
            out = self.fs.call_s3(
                "delete_objects", Bucket=bucket, Delete={"Objects": objects, "Quiet": True}
            )
        except Exception as exc:
            raise storage_error(exc, self.url(f"{bucket}/{keys[0]}"), "delete") from exc
        for error in out.get("Errors", []):
            if error.get("Code") != "NoSuchKey":
                url = self.url(f"{bucket}/{error.get('Key')}")
                raise StorageError(
                    f"cannot delete {url}: {error.get('Code')}: {error.get('Message')}"
                )

    async def _anames_prefixed(self, prefix: str) -> list[str]:
        """Names (after the last "/") of the keys starting with ``prefix`` (a path)."""
        bucket, key, _ = self.fs.split_path(prefix)
        start = key.rfind("/") + 1
        names: list[str] = []
        more: dict[str, str] = {}
        while True:
            page = await self.fs._call_s3(
                "list_objects_v2", Bucket=bucket, Prefix=key, Delimiter="/", **more
            )
            names.extend(item["Key"][start:] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return names
            more = {"ContinuationToken": page["NextContinuationToken"]}

    def _names_prefixed(self, prefix: str) -> list[str]:  # pragma: no cover - s3fs is async
        raise NotImplementedError

    def list_names_prefixed(self, path: str, prefixes: Sequence[str]) -> dict[str, list[str]]:
        folder = path.rstrip("/")
        items = [f"{folder}/{prefix}" for prefix in prefixes]
        results = self._run_all(items, self._anames_prefixed, self._names_prefixed)
        out: dict[str, list[str]] = {}
        for prefix, item, result in zip(prefixes, items, results, strict=True):
            if isinstance(result, BaseException):
                raise storage_error(result, self.url(item), "list") from result
            out[prefix] = result
        return out

    async def _akeys_of_tree(self, path: str) -> tuple[str, list[str]]:
        """(bucket, the key at ``path`` and every key under ``path/``), listed page by page."""
        bucket, key, _ = self.fs.split_path(path)
        keys, prefix = ([key], f"{key}/") if key else ([], "")
        more: dict[str, str] = {}
        while True:
            page = await self.fs._call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, **more)
            keys.extend(item["Key"] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return bucket, keys
            more = {"ContinuationToken": page["NextContinuationToken"]}

    def _keys_of_tree(self, path: str) -> tuple[str, list[str]]:  # pragma: no cover - async
        raise NotImplementedError

    def delete_trees(self, paths: Iterable[str]) -> None:
        """Each path's object and every key under its prefix: listings at once, then
        DeleteObjects batches."""
        items = list(dict.fromkeys(paths))
        by_bucket: dict[str, list[str]] = defaultdict(list)
        for path, result in zip(
            items, self._run_all(items, self._akeys_of_tree, self._keys_of_tree), strict=True
        ):
            self.fs.invalidate_cache(path)
            if isinstance(result, BaseException):
                raise storage_error(result, self.url(path), "list") from result
            bucket, keys = result
            by_bucket[bucket].extend(keys)
        for bucket, keys in by_bucket.items():
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), DELETE_BATCH):
                self._delete_batch(bucket, unique[start : start + DELETE_BATCH])
