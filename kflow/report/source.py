"""Reading what a page shows from the project's storage: run records and log tails."""

from __future__ import annotations

from kflow.report.salvage import read_record
from kflow.run.logtail import log_tail
from kflow.run.records import RunRecord, log_location, mark_died
from kflow.run.records import find_run as find_record
from kflow.storage import Storage

MAX_TAILS = 2000  # logs read for one report: every failed one, then others up to this


def find_run(storage: Storage, root: str, wanted: str | None) -> RunRecord:
    """The run named by id, unique prefix or ``latest`` (the default); exit 2 if none. A run
    whose kflow is gone shows as died, never as running forever, and what was running in it
    too: the same marking as ``kflow runs`` (``mark_died``)."""
    record = find_record(storage, root, wanted, read_record)
    mark_died(record)
    return record


def output_stamps(
    storage: Storage, record: RunRecord, limit: int = MAX_TAILS
) -> dict[str, dict[str, float | None]]:
    """Location → its size and mtime now (one batched stat), for the first ``limit``
    instances' outputs; a missing output has none."""
    locations = [o for entry in list(record.instances.values())[:limit] for o in entry.outputs]
    stamps = storage.stat_many(locations) if locations else {}
    return {
        location: {"size": float(stamp.size), "mtime": stamp.mtime}
        for location, stamp in stamps.items()
        if stamp is not None
    }


def read_tails(
    storage: Storage, root: str, record: RunRecord, limit: int = MAX_TAILS
) -> dict[str, str]:
    """Instance → the tail of its last attempt's log: failed ones first, in one batched read.
    Logs are read where kflow stores them (run id, instance, attempt number), never from a
    path the record names: a record on storage is untrusted input."""
    chosen: list[tuple[str, str]] = []
    order = sorted(record.instances.items(), key=lambda kv: kv[1].status != "failed")
    for name, entry in order[:limit]:
        if entry.attempts and entry.attempts[-1].log:
            last = entry.attempts[-1].number
            chosen.append((name, log_location(root, record.run_id, name, last)))
    data = storage.read_many([log for _, log in chosen]) if chosen else {}
    out = {}
    for name, log in chosen:
        found = data.get(log)
        if found is not None:
            out[name] = log_tail(found, record.run_id, name)
    return out
