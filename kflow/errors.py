"""The errors a user sees: each carries where it happened and the exit code it maps to.

Library code raises these; the CLI turns them into one message and an exit code.
Exit codes are part of the contract (SPEC §3):
0 success, 1 a task failed, 2 bad definition or usage, 3 held by another run
(``--no-wait``), 4 infrastructure unreachable, 130 interrupted.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_HELD = 3
EXIT_INFRASTRUCTURE = 4
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file, and a key path and/or line inside it."""

    file: str
    key: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        text = self.file
        if self.line is not None:
            text += f":{self.line}"
        if self.key:
            text += f": {self.key}"
        return text


class KflowError(Exception):
    """Base of every error kflow reports to a user instead of a traceback."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class DefinitionError(KflowError):
    """The project's definitions (kflow.toml, kflow.py) are invalid."""

    exit_code = EXIT_USAGE


class UsageError(KflowError):
    """The command line asks for something that cannot be done (unknown target, bad --param)."""

    exit_code = EXIT_USAGE


class StorageError(KflowError):
    """Storage could not be reached or refused an operation."""

    exit_code = EXIT_INFRASTRUCTURE


class ClusterError(KflowError):
    """The Kubernetes cluster could not be reached or refused an operation."""

    exit_code = EXIT_INFRASTRUCTURE


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean X?' hint for a near-miss name, or None when nothing is close."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
