"""Executors run attempts; the runner sees only the Protocol in ``base``.

``make_executor`` is the one place that maps a name (profile ``executor`` or
``--executor``) to an implementation; heavy ones are imported only when chosen.
"""

from __future__ import annotations

from kflow.errors import UsageError
from kflow.executors.base import (
    AttemptHandle,
    AttemptSpec,
    AttemptState,
    AttemptUpdate,
    Executor,
)
from kflow.model import Project

EXECUTORS = ("local", "kubernetes")


def make_executor(name: str, project: Project, cpus: int | None = None) -> Executor:
    """The executor called ``name`` for ``project``; ``cpus`` is the local CPU budget (-j)."""
    if name == "local":
        from kflow.executors.local import make_local_executor

        return make_local_executor(project.directory, cpus)
    if name == "kubernetes":
        from kflow.executors.kubernetes import make_kubernetes_executor

        made: Executor = make_kubernetes_executor(project)
        return made
    raise UsageError(f"unknown executor {name!r}", hint=f"use one of {', '.join(EXECUTORS)}")


__all__ = [
    "EXECUTORS",
    "AttemptHandle",
    "AttemptSpec",
    "AttemptState",
    "AttemptUpdate",
    "Executor",
    "make_executor",
]
