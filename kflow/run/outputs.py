"""An attempt's outputs as the runner judges them: missing after success, removed after failure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kflow.graph import Instance
from kflow.model import InstanceId
from kflow.run.hooks import Replanner
from kflow.run.records import kflow_dir
from kflow.storage import Storage


def missing_outputs(storage: Storage, instance: Instance) -> list[str]:
    """The instance's declared outputs that do not exist (one batched stat)."""
    if not instance.outputs:
        return []
    stamps = storage.stat_many(instance.outputs.values())
    return [location for location, stamp in stamps.items() if stamp is None]


def remove_outputs(storage: Storage, root: str, locations: Iterable[str]) -> None:
    """Files and whole folders, so that nothing partial ever counts as done; never the
    project folder or kflow's own records, whatever an output was declared as."""
    storage.delete_trees(locations, keep=(".", kflow_dir(root)))


def outputs_replanner(storage: Storage, reasons: Mapping[InstanceId, str]) -> Replanner:
    """A Replanner for callers without a planner: after waiting for another run, only
    whether every output exists; otherwise the reason the run was given."""

    def replan(instance: Instance, waited: bool) -> str | None:
        if not waited:
            return reasons.get(instance.id, "")
        missing = missing_outputs(storage, instance)
        return f"output missing: {missing[0]}" if missing else None

    return replan
