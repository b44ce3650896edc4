"""How a run ends: its status and exit code (SPEC §3), once everything has settled."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future

from kflow.errors import (
    EXIT_HELD,
    EXIT_INFRASTRUCTURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TASK_FAILED,
    KflowError,
)
from kflow.run.statuses import InstanceStatus, RunStatus


def outcome(
    statuses: Sequence[str],
    fatal: BaseException | None,
    background: KflowError | None,
    interrupted: bool,
) -> tuple[RunStatus, int]:
    """(status, exit code) by precedence: interrupted 130; an error that ended the run its
    own code (storage 4); a task failed 1; a bookkeeping error its code; held by another
    run with --no-wait 3; else succeeded 0."""
    if interrupted or isinstance(fatal, KeyboardInterrupt):
        return RunStatus.INTERRUPTED, EXIT_INTERRUPTED
    if fatal is not None:
        return RunStatus.ERROR, int(getattr(fatal, "exit_code", EXIT_INFRASTRUCTURE))
    if InstanceStatus.FAILED in statuses:
        return RunStatus.FAILED, EXIT_TASK_FAILED
    if background is not None:
        return RunStatus.ERROR, background.exit_code
    if InstanceStatus.HELD in statuses:
        return RunStatus.HELD, EXIT_HELD
    return RunStatus.SUCCEEDED, EXIT_OK


def drain(background: Sequence[Future[None]], timeout: float = 60) -> KflowError | None:
    """Wait for background bookkeeping; the first storage error it met, if any."""
    first: KflowError | None = None
    for future in background:
        try:
            future.result(timeout=timeout)
        except KflowError as exc:
            first = first or exc
        except TimeoutError:
            if first is None:
                first = KflowError(f"storage did not answer in {timeout:g} s")
                first.exit_code = EXIT_INFRASTRUCTURE
    return first
