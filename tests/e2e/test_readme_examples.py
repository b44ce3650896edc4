"""Every project snippet in README.md is a tested example.

Snippets are found by their fences: each ```toml block is written as a project's
``kflow.toml`` (with the README's ```python blocks as its included files, and an
empty file for each plain source input it names) and must pass ``kflow check``;
each ```python block is written as a pure-Python ``kflow.py``, must pass ``kflow
check``, and its decorated-function tasks must build. A block that is only part of
a project on purpose is marked by ``<!-- fragment -->`` on the line before its fence,
or by ``fragment`` after the language (```` ```toml fragment ````).
"""

from __future__ import annotations

import ast
import glob
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import kflow

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^ {0,3}```(?P<lang>[A-Za-z0-9_+-]*)(?P<info>[^\n]*)$")
FRAGMENT = "<!-- fragment -->"
HOW_TO_MARK = "\n(a snippet that is only part of a project: open it with ```toml fragment)"


def snippets(language: str) -> list[tuple[int, str]]:
    """(line, text) of each fenced block of ``language`` in README.md, not fragments."""
    text = README.read_text()
    lines = text.splitlines()
    found: list[tuple[int, str]] = []
    block: list[str] | None = None
    start = 0
    wanted = False
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if block is None and fence:
            block, start = [], number
            previous = lines[number - 2].strip() if number > 1 else ""
            fragment = previous == FRAGMENT or "fragment" in fence["info"]
            wanted = fence["lang"].lower() == language and not fragment
        elif block is not None and line.strip() == "```":
            if wanted:
                found.append((start, "\n".join(block) + "\n"))
            block = None
        elif block is not None:
            block.append(line)
    return found


def _label(snippet: tuple[int, str]) -> str:
    return f"README.md:{snippet[0]}"


def test_the_readme_has_snippets_to_test() -> None:
    assert snippets("toml") and snippets("python")


@pytest.mark.parametrize("snippet", snippets("toml"), ids=_label)
def test_readme_toml_snippet_passes_check(tmp_path: Path, snippet: tuple[int, str]) -> None:
    line, text = snippet
    (tmp_path / "kflow.toml").write_text(text)
    data = tomllib.loads(text)
    # The README's Python examples as included files, but for one that declares a
    # parameter this TOML declares too (it is a whole kflow.py of its own).
    declared = set(data.get("params", {}))
    python = [
        code
        for _, code in snippets("python")
        if not declared & set(re.findall(r"\bparam\(\s*[\"'](\w+)", code))
    ]
    for index, pattern in enumerate(data.get("project", {}).get("include", [])):
        if not glob.glob(str(tmp_path / pattern), recursive=True):
            target = tmp_path / pattern.replace("**/", "").replace("*", f"readme{index}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(python) if python else "")
    for task in data.get("tasks", {}).values():
        for source in task.get("inputs", []):
            if "{" not in source and "://" not in source and not glob.has_magic(source):
                path = tmp_path / source
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
    result = kflow("check", "-C", tmp_path)
    assert result.exit_code == 0, f"README.md:{line}: {result.output}{HOW_TO_MARK}"


@pytest.mark.parametrize("snippet", snippets("python"), ids=_label)
def test_readme_python_snippet_checks_and_its_function_tasks_build(
    tmp_path: Path, snippet: tuple[int, str]
) -> None:
    line, text = snippet
    (tmp_path / "kflow.py").write_text(text)
    result = kflow("check", "-C", tmp_path)
    assert result.exit_code == 0, f"README.md:{line}: {result.output}{HOW_TO_MARK}"
    decorated = [
        node.name
        for node in ast.parse(text).body
        if isinstance(node, ast.FunctionDef)
        and any("task" in ast.unparse(d) for d in node.decorator_list)
    ]
    if decorated:
        built = kflow("build", "-C", tmp_path, *decorated)
        assert built.exit_code == 0, f"README.md:{line}: {built.output}"
        assert kflow("build", "-C", tmp_path, "-q", *decorated).exit_code == 0
