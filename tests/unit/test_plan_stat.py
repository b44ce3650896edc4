"""The planner's stat of many plain local paths (one batch, relative to the project folder)
answers exactly as each location stat'ed alone, by the generic route."""

from __future__ import annotations

import os
from pathlib import Path

from kflow.storage import Storage


def layout(project: Path, outside: Path) -> list[str]:
    (project / "data" / "folder").mkdir(parents=True)
    (project / "data" / "a.txt").write_text("a")
    (project / "data" / "folder" / "b.txt").write_text("bb")
    (project / "data" / "empty").mkdir()
    (outside / "c.txt").write_text("ccc")
    os.symlink(outside / "c.txt", project / "data" / "link.txt")
    os.symlink(project / "nowhere", project / "data" / "dangling.txt")
    os.symlink(outside, project / "data" / "linked")
    return [
        "data/a.txt",
        "data/folder",  # a folder: stamped by its files
        "data/empty",  # an empty folder counts as missing
        "data/missing.txt",
        "data/a.txt/below",  # below a file
        "data/link.txt",  # a link is what it points to
        "data/dangling.txt",
        "data/linked/c.txt",
        str(outside / "c.txt"),  # absolute
        "data/../data/a.txt",  # not normal: the generic route normalises it
    ]


def test_a_batch_of_local_paths_answers_as_each_alone(tmp_path: Path) -> None:
    project, outside = tmp_path / "p", tmp_path / "o"
    project.mkdir()
    outside.mkdir()
    asked = layout(project, outside)
    storage = Storage(project)
    plain = [loc for loc in asked if ".." not in loc]
    url = "file://" + str(outside / "c.txt")  # with a URL, a batch takes the generic route
    alone = {loc: storage.stat_many([loc, url])[loc] for loc in asked}
    assert storage.stat_many(plain) == {loc: alone[loc] for loc in plain}
    assert {loc: storage.stat_many([loc])[loc] for loc in asked} == alone
    assert alone["data/a.txt"] is not None and alone["data/a.txt"].size == 1
    assert alone["data/folder"] is not None and alone["data/folder"].is_dir
    assert alone["data/empty"] is None and alone["data/missing.txt"] is None
    assert alone["data/link.txt"] is not None and alone["data/link.txt"].size == 3
    assert alone["data/dangling.txt"] is None and alone["data/a.txt/below"] is None
    assert alone["data/../data/a.txt"] == alone["data/a.txt"]


def test_a_project_folder_that_does_not_exist_yet_has_nothing(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("c")
    found = Storage(tmp_path / "not-yet").stat_many(["data/x", str(tmp_path / "c.txt")])
    assert found["data/x"] is None
    assert found[str(tmp_path / "c.txt")] is not None
