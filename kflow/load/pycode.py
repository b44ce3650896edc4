"""The code fingerprint of a decorated-function task (SPEC §2).

A decorated task is fingerprinted by what can change its behaviour, not by its
whole file: its own function, the module's functions and classes it uses
(transitively), and what the module runs at import (every top-level statement
that is not a function or class definition: imports, constants, loops, calls).
Comments, blank lines, moved code and the other tasks beside it leave the
fingerprint alone.

The hash is over the code as ``ast.unparse`` writes it back (no comments, no
positions, one layout), which for ordinary code stays the same across Python versions,
unlike ``ast.dump`` (whose fields grow with the grammar): two cron hosts on
different Pythons agree.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
_HASH_LEN = 16


class ModuleCode:
    """One parsed definition file: its top-level definitions and its import-time statements."""

    def __init__(self, path: Path, tasks: Iterable[str] = ()):
        self.tasks = set(tasks)  # the file's decorated tasks
        tree = ast.parse(path.read_bytes(), filename=str(path))
        self.defs: dict[str, list[_Def]] = {}
        statements: list[ast.stmt] = []
        api = _api_names(tree.body)
        for node in tree.body:
            if isinstance(node, _Def):
                self.defs.setdefault(node.name, []).append(node)
            elif not _is_api_call(node, api):
                statements.append(node)
        self._texts: dict[int, str] = {}
        # What import runs, with the definitions those statements use; a task named there
        # (say, called under ``if __name__ == "__main__"``) is not every task's code.
        self.import_time = _text_all(statements)
        self.import_names = self._closure(_names_in(statements), skip=self.tasks)

    def _text(self, node: ast.AST) -> str:
        known = self._texts.get(id(node))
        if known is None:
            known = self._texts[id(node)] = ast.unparse(node)
        return known

    def _closure(self, names: Iterable[str], skip: set[str]) -> list[str]:
        """The top-level definitions reachable from ``names`` by name, sorted."""
        seen: set[str] = set()
        todo = [n for n in names if n in self.defs and n not in skip]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for node in self.defs[name]:
                todo.extend(n for n in _names_in([node]) if n in self.defs and n not in seen)
        return sorted(seen - skip)

    def function_hash(self, function: Callable[..., Any]) -> str:
        """The hash of one task function's code, the module's definitions it uses (a task it
        calls counts too) and the import-time statements."""
        own = self._own_node(function)
        names = self._closure(_names_in([own]), skip={function.__name__})
        names = sorted(set(names) | set(self.import_names))
        parts = [self._text(own), self.import_time]
        for name in names:
            parts.extend(self._text(node) for node in self.defs[name])
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:_HASH_LEN]

    def _own_node(self, function: Callable[..., Any]) -> ast.AST:
        candidates = self.defs.get(function.__name__, [])
        first_line = function.__code__.co_firstlineno
        for node in candidates:
            starts = [node.lineno, *(d.lineno for d in node.decorator_list)]
            if first_line in starts:
                return node
        return candidates[-1] if candidates else ast.Pass()


# kflow's definition calls: what they define is in the model (and so in each task's own
# fingerprint), so a top-level `task("x", ...)` or `param(...)` is not import-time code.
_API = {"task", "param", "project", "defaults", "profile"}


def _api_names(body: Iterable[ast.stmt]) -> set[str]:
    """Names the file binds to kflow's API (``from kflow import task``) or to kflow itself."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.module == "kflow":
            names.update(a.asname or a.name for a in node.names if a.name in _API)
        elif isinstance(node, ast.Import):
            names.update(a.asname or a.name for a in node.names if a.name == "kflow")
    return names


def _is_api_call(node: ast.stmt, api: set[str]) -> bool:
    """A top-level statement that is only a call of kflow's API: ``task("x", ...)``."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    func = node.value.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id in api and func.attr in _API
    return isinstance(func, ast.Name) and func.id in api


def _names_in(nodes: Iterable[ast.AST]) -> set[str]:
    """Every plain name these nodes mention (reads, calls, decorators)."""
    return {node.id for top in nodes for node in ast.walk(top) if isinstance(node, ast.Name)}


def _text_all(nodes: Iterable[ast.AST]) -> str:
    return "\n".join(ast.unparse(node) for node in nodes)
