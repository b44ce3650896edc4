"""The instance graph: what a build's targets expand to, resolved and ordered.

One module per step (``kflow.load`` gives the Project; this package gives the Graph):

- ``expand``: parameters and matrices → instance ids, their requirements, the order;
- ``instances``: templates → argv, env, outputs and inputs of each instance;
- ``targets``: names, instance ids and output paths on the command line → instances;
- ``places``: outputs inside the project's reach, one maker each, never over a source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kflow.model import Instance, InstanceId, Project

if TYPE_CHECKING:
    from kflow.graph.expand import Expander
    from kflow.graph.instances import normalize_location
    from kflow.graph.targets import default_targets, resolve_target

# Imported on first use: a graph taken from the load cache needs only the Graph class.
_LAZY = {
    "Expander": "kflow.graph.expand",
    "normalize_location": "kflow.graph.instances",
    "default_targets": "kflow.graph.targets",
    "resolve_target": "kflow.graph.targets",
}

__all__ = [
    "Expander",
    "Graph",
    "Instance",
    "build_graph",
    "default_targets",
    "normalize_location",
    "resolve_target",
]


@dataclass
class Graph:
    """Instances in a deterministic topological order (requirements first), and the targets."""

    project: Project
    instances: dict[InstanceId, Instance]
    targets: tuple[InstanceId, ...]
    _dependents: dict[InstanceId, list[InstanceId]] | None = field(default=None, repr=False)
    # Values that depend on the graph alone (kflow.plan keeps each instance's fingerprint and
    # record key here): kept with the graph in the load cache, never made again on a hit.
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def dependents(self, iid: InstanceId) -> list[InstanceId]:
        if self._dependents is None:  # built on first use: planning never needs it
            dependents: dict[InstanceId, list[InstanceId]] = {}
            for instance in self.instances.values():
                for req in instance.requires:
                    dependents.setdefault(req, []).append(instance.id)
            self._dependents = dependents
        return self._dependents.get(iid, [])


def build_graph(
    project: Project,
    targets: Sequence[str] = (),
    overrides: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Graph:
    """Expand the targets (or the project's defaults) into a resolved, ordered instance graph."""
    from kflow.graph.expand import Expander
    from kflow.graph.places import check_places
    from kflow.graph.targets import check_instance_count, default_targets, resolve_target

    expander = Expander(project, overrides)
    wanted = list(targets) or list(project.default_targets) or default_targets(project)
    check_instance_count(expander, wanted)
    target_ids: dict[InstanceId, None] = {}  # ordered, and each id once (a list scan is n²)
    for target in wanted:
        target_ids.update(dict.fromkeys(resolve_target(expander, target, base_dir)))
    order = expander.ordered()
    instances = expander.resolve(order)
    check_places(expander, instances)
    return Graph(project, instances, tuple(target_ids))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kflow.graph' has no attribute {name!r}")
