"""Local create-if-absent (what a lease is taken with): a rename that does not replace
where the kernel has one, a hard link otherwise; either way one winner and no temp file
left behind (deleting files made every later file creation slower on ext4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kflow.storage import Storage
from kflow.storage import local as local_backend
from tests.storage.test_conditional import RACERS, race


@pytest.mark.parametrize("with_renameat2", [True, False])
def test_racing_creates_have_one_winner_and_leave_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_renameat2: bool
) -> None:
    if not with_renameat2:
        monkeypatch.setattr(local_backend, "_RENAMEAT2", None)  # as on a system without it
    storage = Storage(tmp_path)
    lease = "data/.kflow/leases/x.json"
    for durable in (True, False):
        results = race(
            [
                lambda i=i, d=durable: storage.create_exclusive(lease, f"holder-{i}".encode(), d)
                for i in range(RACERS)
            ]
        )
        assert results.count(True) == 1
        assert storage.read_bytes(lease) == f"holder-{results.index(True)}".encode()
        assert sorted(p.name for p in (tmp_path / "data/.kflow/leases").iterdir()) == ["x.json"]
        storage.delete_many([lease])


def test_a_write_that_is_not_durable_is_still_whole_and_replaces(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    storage.write_atomic("data/log.txt", b"first", durable=False)
    storage.write_atomic("data/log.txt", b"second", durable=False)
    assert storage.read_bytes("data/log.txt") == b"second"
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["log.txt"]
