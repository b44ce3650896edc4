"""An attempt's outputs as the runner judges them: missing after success, removed after failure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kflow.graph import Graph
from kflow.graph.places import definition_patterns, source_patterns
from kflow.model import Instance, InstanceId
from kflow.paths import PlacePattern, place_of
from kflow.plan import Decision, Reason
from kflow.run.hooks import Replanner
from kflow.run.records import kflow_dir
from kflow.storage import Storage
from kflow.storage.guard import DeletionGuard


def missing_outputs(storage: Storage, instance: Instance) -> list[str]:
    """The instance's declared outputs that do not exist (one batched stat)."""
    if not instance.outputs:
        return []
    stamps = storage.stat_many(instance.outputs.values())
    return [location for location, stamp in stamps.items() if stamp is None]


def remove_outputs(
    storage: Storage,
    root: str,
    locations: Iterable[str],
    protected: Protected | Iterable[str] = (),
) -> None:
    """Files and whole folders, so that nothing partial ever counts as done; never the
    project folder, {root}, kflow's own records, anything outside the project's reach or
    ``protected`` (definition files, every task's source inputs), whatever an output was
    declared as."""
    locations = list(locations)
    if not locations:
        return
    if isinstance(protected, Protected):
        guard = protected.guard(storage.project_dir, root)
    else:  # plain locations, as a caller without a graph knows them
        guard = DeletionGuard(storage.project_dir, root, protected)
    allowed, _ = guard.split(locations)
    storage.delete_trees(allowed, keep=(".", kflow_dir(root)))


class Protected:
    """What clean-up must never delete besides what the guard knows: definition files, the
    planned instances' source inputs (and what lies inside them), and the input templates
    of the tasks not planned, as patterns (the graph's check, judged again). Made when
    something is first about to be deleted."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self._guard: DeletionGuard | None = None

    def guard(self, project_dir: str, root: str) -> DeletionGuard:
        if self._guard is None:
            graph, project = self.graph, self.graph.project
            planned = {i.id.task for i in graph.instances.values()}
            sources = {loc for i in graph.instances.values() for loc in i.source_inputs}
            patterns = [
                PlacePattern(place_of(loc, project_dir), f"source input {loc!r}")
                for loc in sorted(sources)
            ]
            patterns += source_patterns(project, skip=planned)
            patterns += definition_patterns(project)
            self._guard = DeletionGuard(project_dir, root, protected_locations(graph), patterns)
        return self._guard


def protected_locations(graph: Graph) -> list[str]:
    """Definition files and the planned instances' source inputs."""
    sources = {loc for i in graph.instances.values() for loc in i.source_inputs}
    return [*(str(p) for p in graph.project.files), *sorted(sources)]


def outputs_replanner(storage: Storage, decisions: Mapping[InstanceId, Decision]) -> Replanner:
    """A Replanner for callers without a planner: after waiting for another run, only
    whether every output exists; otherwise the decision the run was given."""

    def replan(instance: Instance, waited: bool) -> Decision | None:
        if not waited:
            return decisions[instance.id]
        missing = missing_outputs(storage, instance)
        return Decision(instance.id, Reason.OUTPUT_MISSING, missing[0]) if missing else None

    return replan
