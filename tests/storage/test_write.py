"""Reading, atomic writes and batched deletes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kflow.errors import StorageError
from kflow.storage import Storage
from tests.storage.s3server import S3Server


def test_write_then_read_back(backend_root: tuple[Storage, str]) -> None:
    storage, root = backend_root
    storage.write_atomic(f"{root}/deep/er/record.json", b'{"ok": true}')
    storage.write_atomic(f"{root}/deep/er/record.json", b'{"ok": false}')

    assert storage.read_bytes(f"{root}/deep/er/record.json") == b'{"ok": false}'


def test_read_many_gives_none_for_missing(backend_root: tuple[Storage, str]) -> None:
    storage, root = backend_root
    names = [f"{root}/r/{i}.json" for i in range(5)]
    for i, name in enumerate(names[:3]):
        storage.write_atomic(name, str(i).encode())

    contents = storage.read_many([*names, f"{root}/elsewhere/x"])

    assert list(contents.values()) == [b"0", b"1", b"2", None, None, None]


def test_read_bytes_of_a_missing_location_is_a_storage_error(
    backend_root: tuple[Storage, str],
) -> None:
    storage, root = backend_root
    with pytest.raises(StorageError, match="does not exist") as caught:
        storage.read_bytes(f"{root}/missing.json")
    assert f"{root}/missing.json" in str(caught.value)


def test_delete_many_ignores_missing_and_keeps_others(backend_root: tuple[Storage, str]) -> None:
    storage, root = backend_root
    for name in ("a", "b", "c"):
        storage.write_atomic(f"{root}/d/{name}", b"x")

    storage.delete_many([f"{root}/d/a", f"{root}/d/b", f"{root}/d/never", f"{root}/nowhere/z"])

    assert list(storage.list_folder(f"{root}/d")) == ["c"]


def test_s3_delete_many_is_batched(
    s3_storage: Storage, s3_bucket: str, s3_server: S3Server
) -> None:
    keys = [f"del/{i:04d}" for i in range(1001)]
    s3_server.put_objects(s3_bucket, dict.fromkeys(keys, b"x"))
    s3_server.reset_counts()

    s3_storage.delete_many([f"s3://{s3_bucket}/{key}" for key in keys])

    assert [r.method for r in s3_server.requests] == ["POST", "POST"]  # DeleteObjects x 1,000
    assert s3_storage.list_folder(f"s3://{s3_bucket}/del") == {}


def test_local_write_creates_folders_and_leaves_no_temp_files(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    storage.write_atomic("a/b/c/out.csv", b"1,2\n")

    assert (tmp_path / "a/b/c/out.csv").read_bytes() == b"1,2\n"
    assert os.listdir(tmp_path / "a/b/c") == ["out.csv"]
    assert oct((tmp_path / "a/b/c/out.csv").stat().st_mode & 0o777) != oct(0o600)


def test_local_write_failing_midway_keeps_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Storage(tmp_path)
    storage.write_atomic("out.csv", b"old content\n")
    real_write = os.write
    calls = []

    def write_half_then_fail(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_write(fd, bytes(data[: len(data) // 2]))

    monkeypatch.setattr(os, "write", write_half_then_fail)
    with pytest.raises(StorageError, match=r"out\.csv"):
        storage.write_atomic("out.csv", b"new content that will not fit\n")
    monkeypatch.undo()

    assert (tmp_path / "out.csv").read_bytes() == b"old content\n"
    assert os.listdir(tmp_path) == ["out.csv"]  # the half-written temp file is gone


def test_s3_failed_write_keeps_the_old_object(
    s3_storage: Storage, s3_bucket: str, s3_server: S3Server
) -> None:
    url = f"s3://{s3_bucket}/rec/state.json"
    s3_storage.write_atomic(url, b'{"v": 1}')
    s3_server.deny(f"/{s3_bucket}/rec/state.json")
    try:
        with pytest.raises(StorageError, match="permission denied"):
            s3_storage.write_atomic(url, b'{"v": 2}')
    finally:
        s3_server.allow_all()

    assert s3_storage.read_bytes(url) == b'{"v": 1}'


def test_s3_reads_and_writes_cost_one_request_per_object(
    s3_storage: Storage, s3_bucket: str, s3_server: S3Server
) -> None:
    urls = [f"s3://{s3_bucket}/records/{i}.json" for i in range(30)]
    s3_server.put_objects(s3_bucket, {f"records/{i}.json": b"{}" for i in range(30)})
    s3_storage.stat(urls[0])
    s3_server.reset_counts()

    contents = s3_storage.read_many(urls)
    s3_storage.write_atomic(urls[0], b'{"v": 2}')

    assert set(contents.values()) == {b"{}"}
    assert [r.method for r in s3_server.requests] == ["GET"] * 30 + ["PUT"]
    assert s3_server.max_in_flight > 1  # the reads went out together


def test_delete_trees_removes_folders_with_everything_in_them(
    backend_root: tuple[Storage, str],
) -> None:
    storage, root = backend_root
    for name in ("t/a", "t/sub/b", "t2/c", "file", "other"):
        storage.write_atomic(f"{root}/{name}", b"x")

    storage.delete_trees([f"{root}/t", f"{root}/file", f"{root}/missing", f"{root}/t/sub"])

    assert sorted(storage.list_folder(root)) == ["other", "t2"]  # t2 only shares a prefix
    assert storage.read_bytes(f"{root}/t2/c") == b"x"


def test_delete_trees_leaves_alone_what_holds_a_kept_location(
    backend_root: tuple[Storage, str],
) -> None:
    storage, root = backend_root
    for name in (".kflow/runs/r.json", "out/a", "x"):
        storage.write_atomic(f"{root}/{name}", b"x")

    storage.delete_trees([root, f"{root}/.kflow", f"{root}/out"], keep=[f"{root}/.kflow/"])

    assert sorted(storage.list_folder(root)) == [".kflow", "x"]
    assert storage.read_bytes(f"{root}/.kflow/runs/r.json") == b"x"


def test_local_delete_trees_keeps_the_project_folder_and_a_symlinked_folder(
    tmp_path: Path,
) -> None:
    storage = Storage(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/keep.txt").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")

    storage.delete_trees([".", str(tmp_path.parent), "link"], keep=["."])

    assert (tmp_path / "elsewhere/keep.txt").exists()  # a symlink goes, not what it points at
    assert not os.path.lexists(tmp_path / "link")


def test_s3_delete_trees_lists_every_page_of_a_big_prefix(
    s3_storage: Storage, s3_bucket: str, s3_server: S3Server
) -> None:
    keys = [f"tree/{i % 3}/{i:04d}" for i in range(1001)] + ["tree", "tree-sibling"]
    s3_server.put_objects(s3_bucket, dict.fromkeys(keys, b"x"))

    s3_storage.delete_trees([f"s3://{s3_bucket}/tree"])

    assert list(s3_storage.list_folder(f"s3://{s3_bucket}")) == ["tree-sibling"]
