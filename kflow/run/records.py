"""Run records: ``{root}/.kflow/runs/RUN_ID.json`` and each attempt's log, on the project's storage.

A record is written when the run starts (status ``running``) and again when it
ends, so a run killed with SIGKILL still leaves a trace. Logs go to
``{root}/.kflow/logs/RUN_ID/<instance>.<attempt>.log``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kflow.errors import UsageError
from kflow.executors.liveness import Place, all_gone, this_place
from kflow.run.ids import safe_name
from kflow.run.statuses import AttemptStatus, InstanceStatus, RunStatus, parse_status
from kflow.storage import Storage

RECORD_VERSION = 1
DEFAULT_HEARTBEAT = 10.0
# A run on another host whose record has not been rewritten for this many heartbeats is shown
# "died?": its kflow died with its host or pod, or lost the storage. Hosts' clocks must agree
# to well within STALE_BEATS heartbeats (NTP does).
STALE_BEATS = 6
DIED = "died"  # its kflow process is provably gone from this host
DIED_ELSEWHERE = "died?"  # elsewhere, and silent for STALE_BEATS heartbeats


def heartbeat_every() -> float:
    """``KFLOW_HEARTBEAT`` seconds if set (tests use a short one), else 10: how often a
    running build rewrites its record at least, so that any host can tell it still goes."""
    try:
        return max(0.1, float(os.environ.get("KFLOW_HEARTBEAT", DEFAULT_HEARTBEAT)))
    except ValueError:
        return DEFAULT_HEARTBEAT


def kflow_dir(root: str) -> str:
    return f"{root.rstrip('/')}/.kflow" if root not in ("", ".") else ".kflow"


def runs_folder(root: str) -> str:
    return f"{kflow_dir(root)}/runs"


def record_location(root: str, run_id: str) -> str:
    return f"{runs_folder(root)}/{run_id}.json"


def log_location(root: str, run_id: str, instance: str, attempt: int) -> str:
    return f"{kflow_dir(root)}/logs/{run_id}/{safe_name(instance)}.{attempt}.log"


@dataclass
class AttemptRecord:
    number: int
    started: float
    ended: float | None = None
    exit_code: int | None = None
    status: str = AttemptStatus.RUNNING  # an AttemptStatus (text if unknown)
    reason: str = ""  # why it failed
    where: str = ""  # pid, pod name
    log: str = ""  # location of the log on storage
    log_here: str = ""  # while it runs on a local executor: its log file on this host
    free: bool = False  # lost to the infrastructure (eviction): did not count as a retry

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


@dataclass
class InstanceRecord:
    status: str = InstanceStatus.QUEUED  # an InstanceStatus (text if unknown)
    reason: str = ""  # why it ran (from the plan)
    detail: str = ""  # why it failed or was skipped
    attempts: list[AttemptRecord] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)  # its requirements: the graph's edges
    ready: float | None = None  # when its requirements were done (it could start)
    outputs: list[str] = field(default_factory=list)  # their locations on storage
    changes: list[str] = field(default_factory=list)  # what made it run, old → new (plan --why)


@dataclass
class RunRecord:
    run_id: str
    project: str
    targets: list[str]
    params: dict[str, str]
    profile: str
    executor: str
    jobs: int
    started: float = field(default_factory=time.time)
    ended: float | None = None
    status: str = RunStatus.RUNNING  # a RunStatus (text if unknown)
    exit_code: int | None = None
    host: str = ""
    pid: int = 0
    # with host and pid, name the kflow process (see executors.liveness)
    boot: str = ""
    pidns: str = ""
    pid_start: int = 0
    # the heartbeat: when its run last wrote it (the writer's clock), and how often it does
    # (0: an older kflow's record, without one)
    beat: float = 0.0
    beat_every: float = 0.0
    instances: dict[str, InstanceRecord] = field(default_factory=dict)
    # rewritten while the run goes on: each write has the next number (``kflow ui`` polls it)
    revision: int = 0
    up_to_date: list[str] = field(default_factory=list)  # the graph's instances that did not run

    def to_json(self) -> bytes:
        # Rewritten while a run goes on: plain dicts of the fields (no deep copy) and the
        # C encoder (any indent falls back to Python's), 20x faster at 5,000 instances.
        data: dict[str, Any] = {"version": RECORD_VERSION, **vars(self)}
        instances: dict[str, Any] = {}
        for name, entry in self.instances.items():
            kind, detail = split_reason(entry.reason)
            instances[name] = {
                **vars(entry),
                "attempts": [{**vars(a), "duration": a.duration} for a in entry.attempts],
                "why": {"kind": kind, "detail": detail},
            }
        data["instances"] = instances
        data["duration"] = None if self.ended is None else self.ended - self.started
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RunRecord:
        raw = json.loads(data)
        instances = {}
        for name, entry in raw.get("instances", {}).items():
            attempts = [
                AttemptRecord(**{k: v for k, v in a.items() if k != "duration"})
                for a in entry.get("attempts", [])
            ]
            for attempt in attempts:
                attempt.status = parse_status(AttemptStatus, attempt.status)
            instances[name] = InstanceRecord(
                parse_status(InstanceStatus, entry.get("status", "")),
                entry.get("reason", ""),
                entry.get("detail", ""),
                attempts,
                list(entry.get("requires") or []),
                entry.get("ready"),
                list(entry.get("outputs") or []),
                list(entry.get("changes") or []),
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"instances"}
        known = {k: v for k, v in raw.items() if k in names}
        for key in ("started", "ended"):  # times are numbers (or absent): arithmetic follows
            if not isinstance(known.get(key, 0.0), (int, float, type(None))):
                raise ValueError(f"run record: {key} is not a time")
        if "status" in known:
            known["status"] = parse_status(RunStatus, known["status"])
        return cls(**known, instances=instances)

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def died(self) -> bool:
        """Recorded as running, but its kflow is gone (see ``how_died``)."""
        return bool(self.how_died())

    def how_died(self, now: float | None = None) -> str:
        """"" while the run goes on (or once it ended); ``DIED`` when its kflow process is
        provably gone (it ran on this host: pid and start time); ``DIED_ELSEWHERE`` when it
        ran elsewhere and its heartbeat is STALE_BEATS heartbeats old at ``now``."""
        if self.status != "running":
            return ""
        place = Place(self.host, self.boot, self.pidns)
        if place.known and place == this_place():  # judged by its process, not by clocks
            return DIED if all_gone(place, [(self.pid, self.pid_start)]) else ""
        if self.beat_every > 0 and self.silence(now) > STALE_BEATS * self.beat_every:
            return DIED_ELSEWHERE
        return ""

    def silence(self, now: float | None = None) -> float:
        """Seconds since its run last wrote the record (its heartbeat)."""
        return (time.time() if now is None else now) - (self.beat or self.started)


def mark_died(record: RunRecord) -> bool:
    """If the record's kflow died (see ``RunRecord.how_died``), say so for people: the run
    "died" (or "died?" elsewhere), and what was running then too (how its attempt ended is
    unknown), never "running" forever. Returns whether it died."""
    how = record.how_died()
    if not how:
        return False
    record.status = how
    why = (
        "kflow died while it ran"
        if how == DIED
        else f"kflow on {record.host or 'another host'} stopped writing its heartbeat "
        f"{record.silence():.0f} s ago (died, or lost the storage)"
    )
    for entry in record.instances.values():
        if entry.status not in ("running", "preparing"):
            continue  # ("preparing": its lease taken, maybe started since the last save)
        entry.status, entry.detail = how, f"{why}: how it ended is unknown"
        for attempt in entry.attempts:
            if attempt.status == "running":
                attempt.status, attempt.reason = "unknown", why
    return True


def split_reason(reason: str) -> tuple[str, str]:
    """``"output missing: data/x.csv"`` → ``("output missing", "data/x.csv")``: the plan's
    reason kind (kflow.plan.Reason) and its detail, so reasons can be grouped."""
    kind, sep, detail = reason.partition(": ")
    return (kind, detail) if sep else (reason, "")


RecordReader = Callable[[bytes], RunRecord]


def save_record(storage: Storage, root: str, record: RunRecord) -> str:
    location = record_location(root, record.run_id)
    storage.write_atomic(location, record.to_json())
    return location


def list_run_ids(storage: Storage, root: str) -> list[str]:
    """Run ids found under ``{root}/.kflow/runs``, newest first."""
    names = storage.list_folder(runs_folder(root))
    return sorted((n[: -len(".json")] for n in names if n.endswith(".json")), reverse=True)


def load_records(
    storage: Storage, root: str, run_ids: list[str], read: RecordReader = RunRecord.from_json
) -> dict[str, RunRecord]:
    """The records of ``run_ids`` (one batched read); unreadable ones are left out.
    ``read``: how to read one (the report also renders what it can of an older shape)."""
    locations = {record_location(root, r): r for r in run_ids}
    out: dict[str, RunRecord] = {}
    for location, data in storage.read_many(locations).items():
        if data is None:
            continue
        try:
            out[locations[location]] = read(data)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # not a run record this kflow can read (a partial write, another shape)
    return out


def find_run(
    storage: Storage, root: str, wanted: str | None, read: RecordReader = RunRecord.from_json
) -> RunRecord:
    """The run named by id, unique prefix or ``latest`` (the default); exit 2 if none."""
    ids = list_run_ids(storage, root)
    if wanted in (None, "latest", "last"):
        if not ids:
            raise UsageError("no runs yet", hint="`kflow build` makes one")
        # Ids sort by their start second; two runs started in one second are told apart
        # by the start time in their records.
        same_second = [r for r in ids if r.split("-")[0] == ids[0].split("-")[0]]
        if len(same_second) > 1:
            found = load_records(storage, root, same_second, read)
            if found:
                newest = max(found.values(), key=lambda record: record.started or 0.0)
                return newest
        matches = ids[:1]
    else:
        matches = [r for r in ids if r == wanted] or [r for r in ids if r.startswith(wanted)]
    if not matches:
        raise UsageError(f"no run {wanted!r}", hint="`kflow runs` lists them")
    if len(matches) > 1:
        raise UsageError(f"{wanted!r} matches {len(matches)} runs", hint=", ".join(matches[:5]))
    found = load_records(storage, root, matches, read)
    if matches[0] not in found:
        raise UsageError(f"run record {matches[0]} is unreadable")
    return found[matches[0]]
