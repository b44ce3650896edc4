"""Run records: ``{root}/.kflow/runs/RUN_ID.json`` and each attempt's log, on the project's storage.

A record is written when the run starts (status ``running``) and again when it
ends, so a run killed with SIGKILL still leaves a trace. Logs go to
``{root}/.kflow/logs/RUN_ID/<instance>.<attempt>.log``.
"""

from __future__ import annotations

import json
import os
import re
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
        """A record read as untrusted input (another user, an older kflow, a hand edit): each
        field type- and range-checked here, once; a field of the wrong type reads as missing.
        ValueError when it is no record, or lacks a time arithmetic needs (its run's or an
        attempt's start): the report's salvage reader shows those as "—"."""
        raw = load_json(data)
        if not isinstance(raw, dict) or not is_run_id(raw.get("run_id")):
            raise ValueError("not a run record")
        started = time_value(raw.get("started"))
        if started is None:
            raise ValueError("run record: started is not a time")
        instances = {}
        for name, entry in _mapping(raw.get("instances")).items():
            entry = _mapping(entry)
            instances[str(name)] = InstanceRecord(
                parse_status(InstanceStatus, text_value(entry.get("status"))),
                text_value(entry.get("reason")),
                text_value(entry.get("detail")),
                _attempts(entry.get("attempts")),
                texts_value(entry.get("requires")),
                time_value(entry.get("ready")),
                texts_value(entry.get("outputs")),
                texts_value(entry.get("changes")),
            )
        params = _mapping(raw.get("params"))
        every = number_value(raw.get("beat_every"))
        return cls(
            run_id=raw["run_id"],
            project=text_value(raw.get("project")),
            targets=texts_value(raw.get("targets")),
            params={str(k): v for k, v in params.items() if isinstance(v, str)},
            profile=text_value(raw.get("profile")),
            executor=text_value(raw.get("executor")),
            jobs=int_value(raw.get("jobs")) or 0,
            started=started,
            ended=time_value(raw.get("ended")),
            status=parse_status(RunStatus, text_value(raw.get("status"))),
            exit_code=int_value(raw.get("exit_code")),
            host=text_value(raw.get("host")),
            pid=int_value(raw.get("pid")) or 0,
            boot=text_value(raw.get("boot")),
            pidns=text_value(raw.get("pidns")),
            pid_start=int_value(raw.get("pid_start")) or 0,
            beat=time_value(raw.get("beat")) or 0.0,
            beat_every=every if every is not None and 0 < every <= MAX_BEAT else 0.0,
            instances=instances,
            revision=int_value(raw.get("revision")) or 0,
            up_to_date=texts_value(raw.get("up_to_date")),
        )

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def died(self) -> bool:
        """Recorded as running, but its kflow is gone (see ``how_died``)."""
        return bool(self.how_died())

    def how_died(self, now: float | None = None) -> str:
        """ "" while the run goes on (or once it ended); ``DIED`` when its kflow process is
        provably gone (it ran on this host: pid and start time); ``DIED_ELSEWHERE`` when it
        ran elsewhere and its heartbeat is STALE_BEATS heartbeats old at ``now``."""
        if self.status != "running":
            return ""
        place = Place(self.host, self.boot, self.pidns)
        every = self.beat_every
        if place.known and place == this_place():  # judged by its process, not by clocks
            if self.pid > 0 and self.pid_start:
                return DIED if all_gone(place, [(self.pid, self.pid_start)]) else ""
            # no process named (a hand-edited or partial record): judged by its heartbeat
            every = every or DEFAULT_HEARTBEAT
        if every > 0 and self.silence(now) > STALE_BEATS * every:
            return DIED_ELSEWHERE
        return ""

    def silence(self, now: float | None = None) -> float:
        """Seconds since its run last wrote the record (its heartbeat)."""
        return (time.time() if now is None else now) - (self.beat or self.started)


# -- reading a record: untrusted input ------------------------------------------------------

# A time is seconds since 1970 up to this (the year 2286): 1e308, Infinity or NaN would
# overflow date formatting and make the page's JSON invalid.
MAX_TIME = 1e10
MAX_BEAT = 86400.0 * 365
MAX_ATTEMPT = 1_000_000
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def is_run_id(value: Any) -> bool:
    """A run id is a plain file name (letters, digits, ``._-``): it names files."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def _no_constant(name: str) -> None:
    return None  # NaN, Infinity, -Infinity: read as missing


def load_json(data: bytes) -> Any:
    """JSON with NaN and ±Infinity read as null (they are not JSON, and not times)."""
    return json.loads(data, parse_constant=_no_constant)


def text_value(value: Any) -> str:
    return value if isinstance(value, str) else ""


def texts_value(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def int_value(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number_value(value: Any) -> float | None:
    """A finite number (bools and huge ints are not), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not -1e15 < value < 1e15:  # compared before float(): a huge int would overflow it
        return None
    return float(value)


def time_value(value: Any) -> float | None:
    """A time in a plausible range (0 … year 2286), else None: read as missing."""
    number = number_value(value)
    return number if number is not None and 0 <= number <= MAX_TIME else None


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _attempts(raw: Any) -> list[AttemptRecord]:
    out = []
    for n, entry in enumerate(raw if isinstance(raw, list) else [], start=1):
        if not isinstance(entry, dict):
            continue
        started = time_value(entry.get("started"))
        if started is None:
            raise ValueError("run record: an attempt's start is not a time")
        number = int_value(entry.get("number"))
        out.append(
            AttemptRecord(
                number=number if number is not None and 0 < number <= MAX_ATTEMPT else n,
                started=started,
                ended=time_value(entry.get("ended")),
                exit_code=int_value(entry.get("exit_code")),
                status=parse_status(AttemptStatus, text_value(entry.get("status"))),
                reason=text_value(entry.get("reason")),
                where=text_value(entry.get("where")),
                log=text_value(entry.get("log")),
                log_here=text_value(entry.get("log_here")),
                free=entry.get("free") is True,
            )
        )
    return out


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
LATEST_BATCH = 20


def save_record(storage: Storage, root: str, record: RunRecord) -> str:
    location = record_location(root, record.run_id)
    storage.write_atomic(location, record.to_json())
    return location


def list_run_ids(storage: Storage, root: str) -> list[str]:
    """Run ids found under ``{root}/.kflow/runs``, newest first."""
    names = storage.list_folder(runs_folder(root))
    ids = (n[: -len(".json")] for n in names if n.endswith(".json"))
    return sorted((i for i in ids if is_run_id(i)), reverse=True)


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
        run_id = locations[location]
        try:
            record = read(data)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            continue  # not a run record this kflow can read (a partial write, another shape)
        if record.run_id == run_id:  # the file name is the id: another one is no record of it
            out[run_id] = record
    return out


def newest_first(records: list[RunRecord]) -> list[RunRecord]:
    """Newest first: by the start second in the id, then, for runs started in one second,
    by the start time in the record (the id's random suffix says nothing about order)."""
    return sorted(
        records, key=lambda r: (r.run_id.split("-")[0], r.started or 0.0, r.run_id), reverse=True
    )


def find_run(
    storage: Storage, root: str, wanted: str | None, read: RecordReader = RunRecord.from_json
) -> RunRecord:
    """The run named by id, unique prefix or ``latest`` (the default); exit 2 if none."""
    ids = list_run_ids(storage, root)
    if wanted in (None, "latest", "last"):
        if not ids:
            raise UsageError("no runs yet", hint="`kflow build` makes one")
        return _latest(storage, root, ids, read)
    matches = [r for r in ids if r == wanted] or [r for r in ids if r.startswith(wanted)]
    if not matches:
        raise UsageError(f"no run {wanted!r}", hint="`kflow runs` lists them")
    if len(matches) > 1:
        raise UsageError(f"{wanted!r} matches {len(matches)} runs", hint=", ".join(matches[:5]))
    found = load_records(storage, root, matches, read)
    if matches[0] not in found:
        raise UsageError(f"run record {matches[0]} is unreadable")
    return found[matches[0]]


def _latest(storage: Storage, root: str, ids: list[str], read: RecordReader) -> RunRecord:
    """The newest readable run: an unreadable newest record (a partial write, a hand edit)
    does not hide the others, as ``kflow runs`` skips it."""
    for start in range(0, len(ids), LATEST_BATCH):
        batch = ids[start : start + LATEST_BATCH]
        found = load_records(storage, root, batch, read)
        readable = [r for r in batch if r in found]
        if readable:
            # Ids sort by their start second; two runs started in one second are told apart
            # by the start time in their records.
            return newest_first([found[r] for r in readable])[0]
    raise UsageError(f"none of the {len(ids)} run records is readable")


def local_log(record: RunRecord, attempt: AttemptRecord) -> bytes | None:
    """A running (or died) local attempt's log, read where the local executor writes it
    (``$TMPDIR/kflow-logs-*/N.log`` on the run's host). The record's ``log_here`` only
    picks which of those files: any other path (``/etc/passwd``, ``../``, a symlink, a file
    not ours) is refused, for a record on storage is untrusted input."""
    import socket
    import stat
    import tempfile

    path = attempt.log_here
    if not path or record.host != socket.gethostname():
        return None
    folder, name = os.path.split(path)
    parent, logs = os.path.split(folder)
    top = os.path.realpath(tempfile.gettempdir())
    if (
        os.path.realpath(path) != path
        or parent != top
        or not logs.startswith("kflow-logs-")
        or re.fullmatch(r"[0-9]{1,9}\.log", name) is None
    ):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        return f.read()


def run_goes_on(storage: Storage, root: str, run_id: str) -> bool:
    """Whether the run's record says it still runs and its kflow is not known to be gone
    (no record, or an unreadable one: it does not)."""
    record = load_records(storage, root, [run_id]).get(run_id) if is_run_id(run_id) else None
    return record is not None and record.status == "running" and not record.died()
