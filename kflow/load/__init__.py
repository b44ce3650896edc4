"""Loading definitions: files in, a validated Project out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kflow.load.discover import (
        Definitions,
        find_project_file,
        load_project,
        locate_project_file,
        read_definitions,
    )

__all__ = [
    "Definitions",
    "find_project_file",
    "load_project",
    "locate_project_file",
    "read_definitions",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: `from kflow import task` in a kflow.py (which imports
    # kflow.load.python) needs none of the validation and TOML code behind these.
    if name in __all__:
        from kflow.load import discover

        return getattr(discover, name)
    raise AttributeError(f"module 'kflow.load' has no attribute {name!r}")
