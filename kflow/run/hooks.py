"""What the runner asks of the state layer around each attempt."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kflow.model import Instance

if TYPE_CHECKING:
    from kflow.plan import Decision


class StateHooks(Protocol):
    """Keeps the per-instance state records in step with what the runner does.

    ``before_attempt`` invalidates the instance's success record (so a crash
    mid-attempt never leaves a record vouching for partial outputs);
    ``after_success`` records fingerprint and stamps once the outputs exist;
    ``not_started`` undoes ``before_attempt`` for an instance that did not start after all
    (the run stopped first): its previous record counts again.
    """

    def before_attempt(self, instance: Instance) -> None: ...

    def after_success(self, instance: Instance) -> None: ...

    def not_started(self, instance: Instance) -> None: ...


class NoState:
    """Hooks that record nothing (for callers without a state layer)."""

    def before_attempt(self, instance: Instance) -> None:
        return None

    def after_success(self, instance: Instance) -> None:
        return None

    def not_started(self, instance: Instance) -> None:
        return None


# Asked again just before an instance starts, its lease held (``waited``: after another
# run held it): the reason it still has to run, or None when another run has built it
# since the plan and its result is up to date for us.
Replanner = Callable[[Instance, bool], "Decision | None"]
