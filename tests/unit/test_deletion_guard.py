"""The second guard on its own: what kflow may delete, whatever the definitions said."""

from __future__ import annotations

from pathlib import Path

import pytest

from kflow.paths import place_of
from kflow.run.outputs import remove_outputs
from kflow.storage import Storage
from kflow.storage.guard import DeletionGuard

PROJECT = "/work/proj"


@pytest.mark.parametrize(
    "location",
    [
        "data/x.csv",
        "data/folder",
        "out/x.txt",
        "file://./data/x.csv",
        "/work/proj/data/a/b",
        "local://data/x",
    ],
)
def test_local_outputs_inside_the_project_may_be_deleted(location: str) -> None:
    guard = DeletionGuard(PROJECT, "data", protected=["kflow.toml", "scripts/run.py"])
    assert guard.problem(location) is None


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("/etc/passwd", "outside"),
        ("../victim", "outside"),
        ("data/../../victim", "outside"),
        ("file:///work/other/x", "outside"),
        (".", "project folder itself"),
        ("", "project folder itself"),
        ("file://.", "project folder itself"),
        ("data", "{root} itself"),
        ("data/", "{root} itself"),
        ("/work", "holds the project folder"),
        ("data/.kflow", "kflow's records"),
        ("data/.kflow/runs/r1.json", "kflow's records"),
        ("kflow.toml", "kflow.toml"),
        ("scripts", "scripts/run.py"),
        ("./scripts/run.py", "scripts/run.py"),
    ],
)
def test_local_locations_out_of_reach_are_refused(location: str, words: str) -> None:
    guard = DeletionGuard(PROJECT, "data", protected=["kflow.toml", "scripts/run.py"])
    problem = guard.problem(location)
    assert problem is not None and words in problem


def test_a_root_outside_the_project_is_within_reach() -> None:
    guard = DeletionGuard(PROJECT, "/mnt/store/sales")
    assert guard.problem("/mnt/store/sales/x.csv") is None
    assert guard.problem("/mnt/store/sales") is not None
    assert guard.problem("/mnt/store") is not None
    assert guard.problem("/mnt/store/other/x") is not None


@pytest.mark.parametrize(
    ("location", "refused"),
    [
        ("s3://bkt/sales/x.csv", False),
        ("s3a://bkt/sales/folder/", False),
        ("s3://elsewhere/own/x.csv", False),  # an explicit URL of its own
        ("s3://bkt/sales", True),
        ("s3://bkt/sales/", True),
        ("s3://bkt", True),
        ("s3://bkt/", True),
        ("s3://bkt/sales/.kflow/runs/x.json", True),
        ("s3://bkt/sales/../other/x", True),
        ("s3://bkt/sales/ref/lookup.csv", True),  # a source input
        ("s3://bkt/sales/ref", True),  # holds one
    ],
)
def test_s3_locations(location: str, refused: bool) -> None:
    guard = DeletionGuard(PROJECT, "s3://bkt/sales", protected=["s3://bkt/sales/ref/lookup.csv"])
    assert (guard.problem(location) is not None) is refused, guard.problem(location)


def test_canonical_places_are_one_spelling() -> None:
    spellings = ["data/x.txt", "file://./data/x.txt", "/work/proj/data/x.txt", "./data//x.txt"]
    assert len({place_of(s, PROJECT).key() for s in spellings}) == 1
    assert place_of("s3a://b/k/../x", PROJECT).key() == place_of("s3://b/x", PROJECT).key()


def test_clean_up_after_failure_never_deletes_outside_the_project(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "data" / "made").mkdir(parents=True)
    (project / "kflow.toml").write_text("")
    (project / "lib").mkdir()
    (project / "lib" / "more.py").write_text("")
    outside = tmp_path / "victim"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    storage = Storage(project)
    remove_outputs(
        storage,
        "data",
        ["data/made", "../victim", str(outside), ".", "data", "kflow.toml", "lib"],
        protected=[str(project / "kflow.toml"), str(project / "lib" / "more.py")],
    )
    assert not (project / "data" / "made").exists()
    assert (outside / "precious.txt").exists()
    assert (project / "kflow.toml").exists() and (project / "lib" / "more.py").exists()
    assert (project / "data").is_dir()
