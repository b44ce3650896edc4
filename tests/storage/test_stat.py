"""Existence and stamps: the same answers on every backend, and S3 costs per prefix."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest

from kflow.storage import Stamp, Storage
from tests.storage.s3server import S3Server

Layout = Callable[[Storage, str, dict[str, bytes]], None]

LAYOUT = {
    "raw/2026-11-24.csv": b"a,b\n1,2\n",
    "raw/2026-11-25.csv": b"a,b\n3,4\n5,6\n",
    "clean/eu/2026-11-24.parquet": b"PAR1" * 10,
    "clean/us/2026-11-24.parquet": b"",
}
ASKED = [
    *LAYOUT,
    "raw/2026-11-26.csv",  # missing file in an existing folder
    "missing/2026-11-24.csv",  # missing folder
    "clean/eu",  # a folder
    "clean/eu/",  # the same folder, spelled with a slash
    "raw/2026-11-24.csv/below",  # below a file: nothing
]


def shape(stamp: Stamp | None) -> tuple[int, bool] | None:
    """What every backend must agree on: existence, size, folder-ness."""
    return None if stamp is None else (stamp.size, stamp.is_dir)


def test_stat_many_answers_the_same_on_every_backend(
    backend_root: tuple[Storage, str], write_layout: Layout
) -> None:
    storage, root = backend_root
    write_layout(storage, root, LAYOUT)

    stamps = storage.stat_many(f"{root}/{name}" for name in ASKED)

    assert {name: shape(stamps[f"{root}/{name}"]) for name in ASKED} == {
        "raw/2026-11-24.csv": (8, False),
        "raw/2026-11-25.csv": (12, False),
        "clean/eu/2026-11-24.parquet": (40, False),
        "clean/us/2026-11-24.parquet": (0, False),
        "raw/2026-11-26.csv": None,
        "missing/2026-11-24.csv": None,
        "clean/eu": (40, True),  # a folder is stamped by its files
        "clean/eu/": (40, True),
        "raw/2026-11-24.csv/below": None,
    }
    file_stamp = stamps[f"{root}/raw/2026-11-24.csv"]
    assert file_stamp is not None and file_stamp.mtime is not None


def test_list_folder_names_children_with_stamps(
    backend_root: tuple[Storage, str], write_layout: Layout
) -> None:
    storage, root = backend_root
    write_layout(storage, root, LAYOUT)

    listing = storage.list_folder(f"{root}/clean")

    assert {name: shape(stamp) for name, stamp in listing.items()} == {
        "eu": (0, True),
        "us": (0, True),
    }
    assert {name: shape(s) for name, s in storage.list_folder(f"{root}/raw/").items()} == {
        "2026-11-24.csv": (8, False),
        "2026-11-25.csv": (12, False),
    }
    assert storage.list_folder(f"{root}/nowhere") == {}


def test_list_names_agrees_with_list_folder(
    backend_root: tuple[Storage, str], write_layout: Layout
) -> None:
    storage, root = backend_root
    write_layout(storage, root, LAYOUT)

    for folder in ("clean", "raw/", "clean/eu", "nowhere", "raw/2026-11-24.csv"):
        names = storage.list_names(f"{root}/{folder}")
        assert sorted(names) == sorted(storage.list_folder(f"{root}/{folder}")), folder
    assert sorted(storage.list_names(f"{root}/clean")) == ["eu", "us"]
    folders = [f"{root}/{folder}" for folder in ("clean", "raw/", "clean/eu", "nowhere")]
    assert storage.list_names_many(folders) == {f: storage.list_names(f) for f in folders}


def test_s3_list_names_many_lists_every_folder_at_once(
    s3_storage: Storage, s3_bucket: str, s3_server: S3Server
) -> None:
    # How a plan reads the record folders of 12 tasks: one listing each, concurrently.
    s3_server.put_objects(
        s3_bucket, {f"state/t{t:02d}/{i}.json": b"{}" for t in range(12) for i in range(30)}
    )
    s3_storage.stat(f"s3://{s3_bucket}/warm-up")
    s3_server.reset_counts()

    names = s3_storage.list_names_many([f"s3://{s3_bucket}/state/t{t:02d}" for t in range(13)])

    assert sorted(names[f"s3://{s3_bucket}/state/t03"]) == sorted(f"{i}.json" for i in range(30))
    assert names[f"s3://{s3_bucket}/state/t12"] == []  # no such folder
    assert len(s3_server.requests) == 13
    assert s3_server.max_in_flight > 1


def test_exists_and_stat(backend_root: tuple[Storage, str], write_layout: Layout) -> None:
    storage, root = backend_root
    write_layout(storage, root, LAYOUT)

    assert storage.exists(f"{root}/raw/2026-11-24.csv")
    assert storage.exists(f"{root}/raw")
    assert not storage.exists(f"{root}/raw/nope.csv")
    assert storage.stat(f"{root}/raw/nope.csv") is None


def test_stat_sees_changes_made_behind_its_back(
    backend_root: tuple[Storage, str], write_layout: Layout
) -> None:
    # fsspec caches listings; the planner must see the storage as it is now.
    storage, root = backend_root
    write_layout(storage, root, {"a/x": b"1"})
    assert storage.stat(f"{root}/a/y") is None

    other = Storage(storage.project_dir, storage.storage_options)
    other.write_atomic(f"{root}/a/y", b"22")
    other.delete_many([f"{root}/a/x"])

    stamps = storage.stat_many([f"{root}/a/x", f"{root}/a/y"])
    assert shape(stamps[f"{root}/a/x"]) is None
    assert shape(stamps[f"{root}/a/y"]) == (2, False)


def test_results_are_keyed_by_the_callers_spelling(tmp_path: object) -> None:
    storage = Storage(str(tmp_path))
    storage.write_atomic("data/x.csv", b"abc")
    spellings = ["data/x.csv", "./data/x.csv", "file://./data/x.csv", f"{tmp_path}/data/x.csv"]
    spellings.append(f"file://{tmp_path}/data/x.csv")

    stamps = storage.stat_many(spellings)

    assert list(stamps) == spellings
    assert len(set(stamps.values())) == 1 and stamps["data/x.csv"] is not None


def test_one_project_may_mix_local_memory_and_s3(s3_storage: Storage, s3_bucket: str) -> None:
    s3_storage.write_atomic("data/a.csv", b"local")
    s3_storage.write_atomic("memory://kflow-mix/b.csv", b"memory!")
    s3_storage.write_atomic(f"s3://{s3_bucket}/c.csv", b"s3")

    stamps = s3_storage.stat_many(
        ["data/a.csv", "memory://kflow-mix/b.csv", f"s3://{s3_bucket}/c.csv", "data/z"]
    )

    assert [shape(s) for s in stamps.values()] == [(5, False), (7, False), (2, False), None]


# -- stamps as content identity ----------------------------------------------------


def test_s3_reupload_of_identical_bytes_keeps_the_stamp(
    s3_storage: Storage, s3_bucket: str, s3_server: S3Server
) -> None:
    url = f"s3://{s3_bucket}/in/data.csv"
    s3_storage.write_atomic(url, b"id,value\n1,2\n")
    before = s3_storage.stat(url)

    s3_server.client().put_object(Bucket=s3_bucket, Key="in/data.csv", Body=b"id,value\n1,2\n")
    after = s3_storage.stat(url)

    assert before is not None and after is not None
    assert before.etag and '"' not in before.etag
    assert before.same_content(after) is True
    assert (before.size, before.etag) == (after.size, after.etag)


def test_s3_one_byte_change_changes_the_stamp(s3_storage: Storage, s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/in/data.csv"
    s3_storage.write_atomic(url, b"id,value\n1,2\n")
    before = s3_storage.stat(url)

    s3_storage.write_atomic(url, b"id,value\n1,3\n")
    after = s3_storage.stat(url)

    assert before is not None and after is not None
    assert before.size == after.size and before.etag != after.etag
    assert before.same_content(after) is False


def test_local_stamps_defer_to_content_hashes(tmp_path: object) -> None:
    storage = Storage(str(tmp_path))
    storage.write_atomic("a.csv", b"same bytes")
    storage.write_atomic("b.csv", b"same bytes")
    storage.write_atomic("c.csv", b"other byte")
    a, b, c = (storage.stat(name) for name in ("a.csv", "b.csv", "c.csv"))
    assert a is not None and b is not None and c is not None

    assert a.same_content(b) is None  # no etag locally: the stamp alone can't tell
    hashes = storage.content_hashes(["a.csv", "b.csv", "c.csv", "missing.csv", "."])
    assert hashes["a.csv"] == hashes["b.csv"] != hashes["c.csv"]
    assert hashes["missing.csv"] is None and hashes["."] is None
    assert storage.content_hash("a.csv") == hashlib.sha256(b"same bytes").hexdigest()


def test_content_hash_is_the_same_on_every_backend(
    backend_root: tuple[Storage, str], write_layout: Layout
) -> None:
    storage, root = backend_root
    write_layout(storage, root, LAYOUT)

    hashes = storage.content_hashes([f"{root}/{name}" for name in LAYOUT])

    assert list(hashes.values()) == [hashlib.sha256(data).hexdigest() for data in LAYOUT.values()]


# -- the cost of a plan on S3 ---------------------------------------------------------


def test_s3_stat_many_costs_one_listing_per_prefix_not_per_object(
    s3_storage: Storage, s3_bucket: str, s3_server: S3Server
) -> None:
    # 2,000 objects in 20 prefixes; the first prefix holds 1,050 keys so that the
    # listing must follow a second page (ListObjectsV2 returns at most 1,000 keys).
    sizes = [1050] + [50] * 19
    keys = [f"out/p{p:02d}/{i:04d}.txt" for p, size in enumerate(sizes) for i in range(size)]
    assert len(keys) == 2000
    s3_server.put_objects(s3_bucket, {key: key.encode() for key in keys})
    asked = [f"s3://{s3_bucket}/{key}" for key in keys]
    asked += [f"s3://{s3_bucket}/out/p{p:02d}/missing.txt" for p in range(len(sizes))]
    s3_storage.stat(f"s3://{s3_bucket}/warm-up")  # session setup is not the plan's cost
    s3_server.reset_counts()

    stamps = s3_storage.stat_many(asked)

    assert sum(stamp is not None for stamp in stamps.values()) == len(keys)
    first = stamps[asked[0]]
    assert first is not None and first.size == len(keys[0]) and first.etag
    requests = s3_server.requests
    assert all(r.method == "GET" and r.query.get("list-type") == ["2"] for r in requests)
    pages = sum(-(-size // 1000) for size in sizes)  # 21
    assert len(requests) == pages, s3_server.counts()
    assert s3_server.max_in_flight > 1  # prefixes are listed concurrently


def test_s3_a_lone_location_costs_a_head_not_a_listing_of_its_folder(
    s3_storage: Storage, s3_bucket: str, s3_server: S3Server
) -> None:
    # Today's cron run asks for raw/{today}.csv next to 1,500 earlier dates.
    s3_server.put_objects(s3_bucket, {f"raw/{i:05d}.csv": b"x" for i in range(1500)})
    s3_storage.stat(f"s3://{s3_bucket}/warm-up/x")
    s3_server.reset_counts()

    present = s3_storage.stat(f"s3://{s3_bucket}/raw/00042.csv")
    absent = s3_storage.stat(f"s3://{s3_bucket}/raw/today.csv")
    folder = s3_storage.stat(f"s3://{s3_bucket}/raw")

    assert present is not None and present.size == 1 and present.etag
    assert absent is None
    assert folder is not None and folder.is_dir
    listed = s3_storage.stat_many([f"s3://{s3_bucket}/raw/00042.csv", f"s3://{s3_bucket}/raw/x"])
    assert listed[f"s3://{s3_bucket}/raw/00042.csv"] == present  # HEAD and LIST agree
    methods = [r.method for r in s3_server.requests]
    assert methods[:5] == ["HEAD", "HEAD", "GET", "HEAD", "GET"]  # 1 + 2 + 2, none of them pages
    assert all(
        r.query.get("max-keys") == ["1"] for r in s3_server.requests[:5] if r.method == "GET"
    )


def test_s3_timestamps_parse_as_botocore_parses_them() -> None:
    from botocore.utils import parse_timestamp as botocore_parse

    from kflow.storage.s3 import parse_timestamp

    for value in (
        "2026-11-25T08:30:00.123Z",  # ListObjectsV2 LastModified
        "2026-11-25T08:30:00Z",
        "Wed, 25 Nov 2026 08:30:00 GMT",  # a Last-Modified header
        "1795163400",  # epoch seconds
    ):
        assert parse_timestamp(value) == botocore_parse(value), value
        assert parse_timestamp(value).timestamp() == botocore_parse(value).timestamp()


def test_a_folder_is_stamped_by_its_files_and_an_empty_one_is_missing(
    backend_root: tuple[Storage, str], write_layout: Layout, request: pytest.FixtureRequest
) -> None:
    storage, root = backend_root
    folder = f"{root}/out"
    write_layout(storage, root, {"out/a.txt": b"a", "out/sub/b.txt": b"b"})
    first = storage.stat(folder)
    assert first is not None and first.is_dir and first.etag

    def stamp_after(change: Callable[[], None]) -> Stamp | None:
        change()
        return storage.stat(folder)

    added = stamp_after(lambda: storage.write_atomic(f"{folder}/sub/c.txt", b"c"))
    changed = stamp_after(lambda: storage.write_atomic(f"{folder}/a.txt", b"A, longer"))
    deleted = stamp_after(lambda: storage.delete_many([f"{folder}/sub/c.txt"]))
    etags = [s.etag if s else None for s in (first, added, changed, deleted)]
    assert len(set(etags)) == 4, etags  # every change inside is a change of the folder
    assert storage.stat(folder) == deleted  # and asking again changes nothing
    storage.delete_many([f"{folder}/a.txt", f"{folder}/sub/b.txt"])
    _make_empty_folder(storage, folder, request)
    assert storage.stat(folder) is None  # an empty folder output counts as missing


def _make_empty_folder(storage: Storage, folder: str, request: pytest.FixtureRequest) -> None:
    """Leave an empty folder where the backend has them (S3: a zero-byte marker key)."""
    if folder.startswith("s3://"):
        bucket, key = folder[len("s3://") :].split("/", 1)
        server: S3Server = request.getfixturevalue("s3_server")
        server.client().put_object(Bucket=bucket, Key=f"{key}/", Body=b"")
    elif folder.startswith("memory://"):
        import fsspec

        fsspec.filesystem("memory").mkdir(folder, create_parents=True)
    else:
        os.makedirs(os.path.join(storage.project_dir, folder, "sub"), exist_ok=True)


def test_a_glob_is_stamped_as_the_set_it_matches(
    backend_root: tuple[Storage, str], write_layout: Layout
) -> None:
    storage, root = backend_root
    pattern = f"{root}/lib/*.py"
    assert storage.stat(pattern) is None  # nothing matches: missing
    write_layout(storage, root, {"lib/a.py": b"a", "lib/notes.txt": b"n"})
    first = storage.stat(pattern)
    assert first is not None and first.is_dir and first.size == 1
    storage.write_atomic(f"{root}/lib/other.txt", b"not matched")
    assert storage.stat(pattern) == first
    storage.write_atomic(f"{root}/lib/b.py", b"b")
    second = storage.stat(pattern)
    assert second is not None and second.etag != first.etag and second.size == 2
