"""Running a plan: the scheduler, its events, run records, leases."""

from kflow.run.events import Event, EventSink
from kflow.run.hooks import NoState, Replanner, StateHooks
from kflow.run.options import RunMeta, RunOptions, RunResult
from kflow.run.scheduler import Runner

__all__ = [
    "Event",
    "EventSink",
    "NoState",
    "Replanner",
    "RunMeta",
    "RunOptions",
    "RunResult",
    "Runner",
    "StateHooks",
]
