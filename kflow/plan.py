"""Staleness: which instances must run, and the first reason for each (SPEC §2).

Checked in this order, the first that applies is the reason:
forced → output missing (or an earlier attempt never finished) → fingerprint
changed (what runs, or a declared source input's content) → an input changed
since the outputs were made → an upstream instance will run.

All I/O happens up front and in batches (one stat of every location, one
listing of the records, one concurrent read of the records whose
names say something changed); the decisions themselves are pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from kflow.changes import change_diff, change_line, changed_names, value_diff
from kflow.errors import DefinitionError
from kflow.graph import Graph
from kflow.model import Instance, InstanceId
from kflow.state import (
    RecordRef,
    StateStore,
    fingerprint_parts,
    fingerprints,
    inputs_digests,
    instance_key,
)
from kflow.storage import Stamp, Storage


class Reason(str, Enum):
    FORCED = "forced"
    OUTPUT_MISSING = "output missing"
    INCOMPLETE = "incomplete"
    FINGERPRINT_CHANGED = "fingerprint changed"
    INPUT_CHANGED = "input changed"
    UPSTREAM = "upstream will run"


@dataclass(frozen=True)
class Check:
    """One step of a decision, as ``kflow plan --why`` shows it."""

    name: str
    stale: bool
    detail: str
    lines: tuple[str, ...] = ()  # the change in full (a diff), below the detail


class Explainer:
    """Where the steps of a decision go. Planning passes ``QUIET``, which keeps nothing;
    ``plan --why`` passes ``Explainer(keep=True)``. One code path decides and explains, as
    ninja's ``OptionalExplanations`` and doit's ``DependencyStatus.add_reason`` do.

    Details that cost something to write (diffs) are given as functions, called only when
    kept.
    """

    __slots__ = ("checks", "keep")

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.checks: list[Check] = []

    def record(
        self,
        name: str,
        stale: bool,
        detail: str | Callable[[], str],
        lines: Callable[[], tuple[str, ...]] | None = None,
    ) -> bool:
        """Keep the step when explaining; return ``stale``: whether the decision stops here."""
        if self.keep:
            text = detail if isinstance(detail, str) else detail()
            self.checks.append(Check(name, stale, text, lines() if lines else ()))
        return stale


QUIET = Explainer()  # keeps nothing, so one instance serves every decision


class Decision(NamedTuple):
    """Whether one instance runs, and the first reason (SPEC §2 order) with its detail."""

    instance: InstanceId
    reason: Reason | None  # None: up to date
    detail: str

    @property
    def runs(self) -> bool:
        return self.reason is not None

    def line(self) -> str:
        return f"{self.reason.value}: {self.detail}" if self.reason else "up to date"


@dataclass
class Plan:
    graph: Graph
    decisions: dict[InstanceId, Decision]
    to_run: list[InstanceId] = field(default_factory=list)
    # The records as the plan saw them: the runner records through it, replacing those.
    store: StateStore | None = None
    # Up to date with outputs but no record ("adopted"): `kflow build` records them.
    adopted: list[InstanceId] = field(default_factory=list)
    # What the decisions were made from, to redo one step by step for --why.
    observed: Observations | None = field(default=None, repr=False)
    forced: Callable[[Instance], bool] = field(default=lambda _: False, repr=False)
    _running: set[InstanceId] | None = field(default=None, init=False, repr=False)

    def checks(self, iid: InstanceId) -> tuple[Check, ...]:
        """Every check of one instance's decision and its result, as ``plan --why`` shows them.

        Made on demand: most instances are never explained. Requirements are decided before
        their dependents, so the set of instances that run gives the same answers now.
        """
        if self.observed is None:
            return ()
        if self._running is None or len(self._running) != len(self.to_run):
            self._running = set(self.to_run)
        instance = self.graph.instances[iid]
        why = Explainer(keep=True)
        _decide_one(instance, self.observed, self.forced(instance), self._running, why)
        return tuple(why.checks)


@dataclass
class Observations:
    """Everything the decisions need, gathered from storage beforehand."""

    stamps: Mapping[str, Stamp | None]
    records: Mapping[str, RecordRef]  # by instance key
    bodies: Mapping[str, Mapping[str, Any]]  # record location → body
    hashes: Mapping[str, str | None]  # content hashes of local inputs whose mtime moved
    fingerprints: Mapping[InstanceId, str]  # what runs now, hashed
    digests: Mapping[InstanceId, str]  # the input stamps seen now, hashed
    refs: Mapping[InstanceId, RecordRef]  # each instance's newest record, where it has one
    # Output location → the instance (not in this graph) whose last attempt at it did not
    # finish: such a file is never adopted as this graph's up-to-date output.
    unfinished: Mapping[str, str] = field(default_factory=dict)


FEW = 8  # instances observed alone (a recheck): their records are listed by key


class MissingSourceInput(DefinitionError):
    """A declared source input that does not exist and no task makes."""


def make_plan(
    graph: Graph, storage: Storage, *, always: bool = False, force: Sequence[str] = ()
) -> Plan:
    """Decide every instance of the graph, reading storage in batches."""
    store = StateStore(storage, graph.project.root)
    observed = observe(graph, storage, store)
    plan = decide(graph, observed, always=always, force=force)
    plan.store = store
    return plan


def graph_hashes(graph: Graph) -> tuple[Mapping[InstanceId, str], Mapping[InstanceId, str]]:
    """Each instance's fingerprint and record key (``instance_key``), by instance id.

    Both depend on the graph alone: they are made once per graph and kept in it, so a graph
    from the load cache brings them along (``kflow plan`` stores them before caching it).
    """
    known = graph.derived.get("hashes")
    if known is None:
        instances = graph.instances
        keys = {iid: instance_key(iid) for iid in instances}
        known = graph.derived["hashes"] = (fingerprints(instances.values()), keys)
    fingerprints_now, keys = known
    return fingerprints_now, keys


def graph_locations(graph: Graph) -> list[str]:
    """Every output and input location of the graph, sorted, each once: what a plan stats.
    Kept with the graph as ``graph_hashes`` are."""
    known = graph.derived.get("locations")
    if known is None:
        instances = graph.instances.values()
        locations = {loc for i in instances for loc in i.outputs.values()}
        locations.update(loc for i in instances for loc in i.inputs)
        known = graph.derived["locations"] = sorted(locations)
    return list(known)


def observe(graph: Graph, storage: Storage, store: StateStore) -> Observations:
    instances = list(graph.instances.values())
    stamps = storage.stat_many(graph_locations(graph))
    if len(instances) <= FEW:
        records = store.index_of(instances)
    else:
        records = store.index({i.id.task for i in instances})
    fingerprints_now, keys = graph_hashes(graph)
    refs = {iid: ref for iid, key in keys.items() if (ref := records.get(key)) is not None}
    digests = inputs_digests(instances, stamps)
    wanted = [
        ref
        for iid, ref in refs.items()
        if not ref.incomplete
        and (ref.fingerprint != fingerprints_now[iid] or ref.digest != digests[iid])
    ]
    bodies = store.read(wanted)
    # Local files carry no etag: where size matches but mtime moved, the content hash decides.
    suspects = set()
    for ref in wanted:
        for loc, old in bodies.get(ref.location, {}).get("inputs", {}).items():
            now = stamps.get(loc)
            if (
                old
                and now
                and not now.etag
                and now.size == old["size"]
                and now.mtime != old["mtime"]
            ):
                suspects.add(loc)
    hashes = storage.content_hashes(sorted(suspects)) if suspects else {}
    unfinished: dict[str, str] = {}
    if len(refs) < len(keys) and any(_adoptable(i, refs, stamps) for i in instances):
        # A few instances were listed by key: the marks of others need the whole listing.
        listed = records if len(instances) > FEW else store.index({i.id.task for i in instances})
        unfinished = _unfinished_elsewhere(listed, keys, store)
    return Observations(
        stamps, records, bodies, hashes, fingerprints_now, digests, refs, unfinished
    )


def _adoptable(
    instance: Instance, refs: Mapping[InstanceId, RecordRef], stamps: Mapping[str, Stamp | None]
) -> bool:
    """Whether the instance has outputs, all there, and no record: it would be adopted."""
    outputs = instance.outputs.values()
    return bool(outputs) and instance.id not in refs and None not in map(stamps.get, outputs)


def _unfinished_elsewhere(
    records: Mapping[str, RecordRef], keys: Mapping[InstanceId, str], store: StateStore
) -> dict[str, str]:
    """The outputs of attempts that did not finish, of instances this graph does not hold
    (another parameter value, a renamed task): read only when some instance has no record,
    from the few incomplete marks the listing holds. Marks made before they named their
    outputs say nothing."""
    if not any(ref.incomplete for ref in records.values()):
        return {}  # the usual case: no attempt left unfinished, no key set made
    ours = set(keys.values())
    foreign = [ref for key, ref in records.items() if ref.incomplete and key not in ours]
    claimed: dict[str, str] = {}
    for body in store.read(foreign).values():
        outputs = body.get("outputs") if isinstance(body, dict) else None
        who = body.get("instance") if isinstance(body, dict) else None
        if isinstance(outputs, list) and isinstance(who, str):
            claimed.update((loc, who) for loc in outputs if isinstance(loc, str))
    return claimed


def decide(
    graph: Graph, observed: Observations, *, always: bool = False, force: Sequence[str] = ()
) -> Plan:
    """Pure: the decision for every instance, in build order."""
    forced_tasks = set(force)

    def forced(instance: Instance) -> bool:
        return always or instance.id.task in forced_tasks

    plan = Plan(graph, {}, observed=observed, forced=forced)
    running: set[InstanceId] = set()
    decisions = plan.decisions
    for iid, instance in graph.instances.items():
        # forced(instance), inlined: this loop runs once per instance
        now = always or (bool(forced_tasks) and iid.task in forced_tasks)
        reason, detail = _decide_one(instance, observed, now, running, QUIET)
        decisions[iid] = Decision(iid, reason, detail)
        if reason is not None:
            running.add(iid)
            plan.to_run.append(iid)
        elif instance.outputs and iid not in observed.refs:
            plan.adopted.append(iid)
    return plan


def _decide_one(
    instance: Instance,
    observed: Observations,
    forced: bool,
    running: set[InstanceId],
    why: Explainer,
) -> tuple[Reason | None, str]:
    """The reason an instance runs (None: up to date) and its detail; every step taken goes
    to ``why``, which keeps them only when explaining."""
    # Steps that pass are recorded only when explaining (``why.keep``): a plan decides
    # 10,000s of instances, nearly all up to date, and each call costs.
    explain = why.keep
    stamps = observed.stamps
    # Before anything else, forced or not: the instance would run into the missing file.
    for loc in instance.source_inputs:
        if stamps.get(loc) is None:
            raise MissingSourceInput(
                f"{instance.id}: source input {loc!r} does not exist and no task makes it",
                instance.task.location,
            )
    if forced:
        why.record("forced", True, "forced by -B/--force")
        return Reason.FORCED, "forced by -B/--always or --force"
    if explain:
        why.record("forced", False, "no")

    outputs = instance.outputs.values()
    if None in map(stamps.get, outputs):  # the whole scan in C; the list only when needed
        missing = [loc for loc in outputs if stamps.get(loc) is None]
        why.record("outputs exist", True, lambda: _missing_text(missing, instance))
        return Reason.OUTPUT_MISSING, missing[0]
    if explain:
        why.record("outputs exist", False, _missing_text([], instance))
    ref = observed.refs.get(instance.id)
    if ref is not None and ref.incomplete:
        why.record("last attempt finished", True, "an earlier attempt did not finish")
        return Reason.INCOMPLETE, "an earlier attempt did not finish; its outputs are not trusted"

    if ref is None:
        claimed = [loc for loc in instance.outputs.values() if loc in observed.unfinished]
        if claimed:
            other = observed.unfinished[claimed[0]]
            detail = f"{claimed[0]} was left by an attempt of {other} that did not finish"
            why.record("last attempt finished", True, detail)
            return Reason.INCOMPLETE, f"{detail}; it is not trusted"
        newer = _newer_input(instance, stamps)
        why.record("record", False, "none: existing outputs are adopted")
        why.record("inputs older than outputs", bool(newer), newer or "yes")
        if newer:
            return Reason.INPUT_CHANGED, newer
    elif (
        ref.fingerprint == observed.fingerprints[instance.id]
        and ref.digest == observed.digests[instance.id]
    ):
        # The common case, decided by the record's name alone: nothing was read for it.
        if explain:
            why.record("fingerprint", False, "unchanged")
            why.record("inputs unchanged", False, "all input stamps match the record")
    else:
        reason = _compare_with_record(instance, ref, observed, why)
        if reason is not None:
            return reason

    if running:
        for req in instance.requires:
            if req in running:
                why.record("upstream up to date", True, f"{req} will run")
                return Reason.UPSTREAM, f"{req} will run"
    if explain:
        why.record("upstream up to date", False, "yes")
    return None, "up to date"


def _missing_text(missing: list[str], instance: Instance) -> str:
    if missing:
        return f"missing: {', '.join(missing)}"
    return f"all {len(instance.outputs)} exist"


def _newer_input(instance: Instance, stamps: Mapping[str, Stamp | None]) -> str | None:
    output_times = [
        s.mtime for loc in instance.outputs.values() if (s := stamps.get(loc)) and s.mtime
    ]
    if not output_times:
        return None
    oldest = min(output_times)
    for loc in instance.inputs:
        stamp = stamps.get(loc)
        if stamp and stamp.mtime and not stamp.is_dir and stamp.mtime > oldest:
            return f"{loc} is newer than the outputs (no record)"
    return None


def _compare_with_record(
    instance: Instance, ref: RecordRef, observed: Observations, why: Explainer
) -> tuple[Reason, str] | None:
    body = observed.bodies.get(ref.location)
    if ref.fingerprint != observed.fingerprints[instance.id]:
        before = body.get("fingerprint") if body else None
        if not before:
            changed = "the fingerprint changed (the record's details could not be read)"
            why.record("fingerprint", True, changed)
            return Reason.FINGERPRINT_CHANGED, changed
        parts = fingerprint_parts(instance)
        recorded_parts: Mapping[str, Any] = before
        why.record(
            "fingerprint",
            True,
            lambda: f"changed: {', '.join(changed_names(recorded_parts, parts)) or 'the hash'}",
            lambda: _diff(recorded_parts, parts),
        )
        return Reason.FINGERPRINT_CHANGED, change_line(before, parts)
    # A source input's content is part of the fingerprint (SPEC §2): its change is reported
    # as one, on the fingerprint row too, and before any other input's change.
    recorded: Mapping[str, Any] = body.get("inputs", {}) if body is not None else {}
    sources = set(instance.source_inputs)
    for loc in instance.source_inputs if body is not None else ():
        if _changed(loc, recorded.get(loc), observed):
            old = recorded.get(loc)

            def source_stamps(
                loc: str = loc, old: Mapping[str, Any] | None = old
            ) -> tuple[str, ...]:
                return _stamp_diff(loc, old, observed)

            detail = f"source input {loc} changed"
            why.record("fingerprint", True, f"changed: source input {loc}")
            why.record("source inputs unchanged", True, detail, source_stamps)
            return Reason.FINGERPRINT_CHANGED, detail
    why.record("fingerprint", False, "unchanged")
    if body is None:
        if ref.digest != observed.digests[instance.id]:
            why.record("inputs unchanged", True, "the record could not be read")
            return Reason.INPUT_CHANGED, "inputs changed (the record could not be read)"
        # The record's name says every input stamp is as recorded: nothing to read.
        why.record("inputs unchanged", False, "all input stamps match the record")
        return None
    for loc in instance.inputs:
        if loc not in sources and _changed(loc, recorded.get(loc), observed):
            old = recorded.get(loc)

            def stamps(loc: str = loc, old: Mapping[str, Any] | None = old) -> tuple[str, ...]:
                return _stamp_diff(loc, old, observed)

            why.record("inputs unchanged", True, f"{loc} changed", stamps)
            return Reason.INPUT_CHANGED, f"{loc} changed"
    why.record("inputs unchanged", False, "same content as recorded")
    return None


def _changed(loc: str, old: Mapping[str, Any] | None, observed: Observations) -> bool:
    now = observed.stamps.get(loc)
    if old is None or now is None:
        return (old is None) != (now is None)
    if now.size != old["size"]:
        return True
    if now.etag or old.get("etag"):
        return now.etag != old.get("etag")
    if now.mtime == old["mtime"]:
        return False
    current = observed.hashes.get(loc)
    return current is None or current != old.get("hash")


def _diff(before: Mapping[str, Any], now: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(change_diff(before, now))


def _stamp_diff(loc: str, old: Mapping[str, Any] | None, observed: Observations) -> tuple[str, ...]:
    """An input's recorded stamp and today's, for ``--why``."""
    now = observed.stamps.get(loc)
    current = None
    if now is not None:
        current = {"size": now.size, "mtime": now.mtime, "etag": now.etag}
        if observed.hashes.get(loc):
            current["hash"] = observed.hashes[loc]
    return tuple(value_diff(_stamp_text(old), _stamp_text(current)))


def _stamp_text(stamp: Mapping[str, Any] | None) -> str:
    if not stamp:
        return "missing"
    words = [f"size {stamp.get('size')}"]
    if stamp.get("etag"):
        words.append(f"etag {stamp['etag']}")
    elif stamp.get("mtime") is not None:
        when = dt.datetime.fromtimestamp(float(stamp["mtime"]), dt.timezone.utc)
        words.append(f"modified {when.isoformat(timespec='milliseconds')}")
    if stamp.get("hash"):
        words.append(f"sha256 {stamp['hash']}")
    return ", ".join(words)


def recheck(plan: Plan, iid: InstanceId, storage: Storage, *, waited: bool = False) -> Decision:
    """One instance decided again just before it starts, its lease held (SPEC §3).

    Another run may have built it since the plan: the lease was free because that run
    finished and released it, or we waited for it. Cheap on purpose (it runs before
    every attempt): when we did not wait, the plan did not see an attempt in progress
    and the outputs' stamps are still those the plan saw, nobody has built the instance
    since (every kflow attempt rewrites its outputs, or fails and removes them), and the
    plan's decision stands. Otherwise that one instance is observed again (its outputs,
    inputs and its task's records) and decided as the plan would, upstream aside: its
    requirements are done by the time it starts.
    """
    decision = plan.decisions[iid]
    if decision.reason is Reason.FORCED:
        return decision  # forced means run it, whoever built it meanwhile
    instance = plan.graph.instances[iid]
    seen = plan.observed
    if seen is not None and not waited and decision.reason is not Reason.INCOMPLETE:
        outputs = list(instance.outputs.values())
        if outputs:
            now = storage.stat_many(outputs)
            if all(now.get(loc) == seen.stamps.get(loc) for loc in outputs):
                return decision
    alone = Graph(plan.graph.project, {iid: instance}, (iid,))
    store = plan.store or StateStore(storage, plan.graph.project.root)
    observed = observe(alone, storage, store)
    try:
        reason, detail = _decide_one(instance, observed, False, set(), QUIET)
    except DefinitionError:
        return decision  # e.g. a source input gone meanwhile: let the attempt say so
    if reason is None and not waited and iid not in observed.refs:
        # Outputs that appeared without a record were not made by another kflow run (kflow's
        # own records can make an output folder appear): nothing to reuse.
        return decision
    return Decision(iid, reason, detail)
