"""Error locations in TOML: every key's line, found through an index built once per file."""

from __future__ import annotations

import re
from pathlib import Path

from kflow.load.document import Document, Source, toml_line_of
from tests.helpers import kflow, write_project

TEXT = """\
[project]
name = "demo"

[params]
day = { type = "date" }

[tasks.fetch]
command = "fetch {day}"
outputs = ["{root}/raw/{day}.csv"]
requires = [{ task = "other", params = { day = "{day}" } }]

[tasks.fetch.matrix]
region = ["eu", "us"]

[taks.stray]
command = "x"
"""


def _scan(text: str, key: str) -> int | None:
    """The former definition, a scan of every line per key: the index must agree with it."""
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    assign = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")

    def split(part: str) -> list[str]:
        return [p.strip("\"'") for p in re.findall(r""""[^"]*"|'[^']*'|[^.\s]+""", part)]

    want = [re.sub(r"\[\d+\]$", "", part) for part in key.split(".")] if key else []
    best_line, best_depth, current = None, -1, []
    for number, line in enumerate(text.splitlines(), start=1):
        found = header.match(line)
        if found:
            full = current = split(found.group(1))
        elif (assigned := assign.match(line)) is not None:
            full = current + split(assigned.group(1))
        else:
            continue
        depth = min(len(full), len(want))
        if full[:depth] == want[:depth] and depth > best_depth:
            best_line, best_depth = number, depth
    return best_line


def test_every_key_is_placed_on_the_line_a_scan_of_the_file_would_find() -> None:
    keys = [
        "",
        "project",
        "project.name",
        "project.storage",
        "params.day",
        "params.day.type",
        "tasks",
        "tasks.fetch",
        "tasks.fetch.command",
        "tasks.fetch.outputs",
        "tasks.fetch.requires[0].params.day",
        "tasks.fetch.matrix.region",
        "tasks.fetch.matrix.missing",
        "tasks.nothing",
        "taks",
        "taks.stray.command",
        "nowhere.at.all",
    ]
    for key in keys:
        assert toml_line_of(TEXT, key) == _scan(TEXT, key), key
    assert toml_line_of(TEXT, "tasks.fetch.outputs") == 9
    assert toml_line_of(TEXT, "taks") == 15


def test_a_key_is_placed_in_the_file_that_defined_its_nearest_prefix() -> None:
    main = Source(Path("kflow.toml"), "kflow.toml", text=TEXT)
    included = Source(Path("more.py"), "more.py", fixed_line=7)
    doc = Document({}, {"": main, "tasks.extra": included})
    assert str(doc.location("tasks.extra.command")) == "more.py:7: tasks.extra.command"
    assert str(doc.location("tasks.extra")) == "more.py:7: tasks.extra"
    assert str(doc.location("tasks.extras")) == "kflow.toml: tasks.extras"  # no line of its own
    assert str(doc.location("params.night")) == "kflow.toml:4: params.night"
    assert str(doc.location("tasks.fetch.command")) == "kflow.toml:8: tasks.fetch.command"


def test_a_bad_reference_in_the_last_of_many_tasks_names_its_line(tmp_path: Path) -> None:
    tables = [f'[tasks.t{i}]\ncommand = "echo {i}"\noutputs = ["o/{i}.txt"]\n' for i in range(300)]
    tables.append('[tasks.last]\ncommand = "echo"\nrequires = ["t1", "nope"]\n')
    write_project(tmp_path, "\n".join(tables))
    result = kflow("plan", "-C", tmp_path)
    assert result.exit_code == 2
    line = 1 + sum(table.count("\n") + 1 for table in tables[:-1]) + 2
    assert f"kflow.toml:{line}: tasks.last.requires[1]" in result.stderr
    assert "unknown task 'nope'" in result.stderr
