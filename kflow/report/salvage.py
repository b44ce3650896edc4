"""Run records this kflow cannot read as they are (hand-written, or an older version's
shape: fields missing, fields of another type, keys it does not know): what they do say,
for the report. The page shows "—" for the rest. Only a JSON object with a run id is a
record at all; anything else stays "unreadable".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from kflow.run.records import (
    MAX_ATTEMPT,
    AttemptRecord,
    InstanceRecord,
    RunRecord,
    int_value,
    is_run_id,
    load_json,
    text_value,
    time_value,
)

RUN_TIMES = ("started", "ended")


@dataclass
class PartialRecord(RunRecord):
    """A record read field by field. ``unknown``: the run's fields it lacks (``started``,
    ``ended``) and ``(instance, attempt number)`` of attempts without a start time."""

    unknown: frozenset[Any] = frozenset()

    def to_json(self) -> bytes:
        """As a record kflow writes, the times it lacks null (``kflow runs --json``)."""
        plain = RunRecord(**{f.name: getattr(self, f.name) for f in fields(RunRecord)})
        data = json.loads(plain.to_json())
        for key in RUN_TIMES:
            if key in self.unknown:
                data[key] = data["duration"] = None
        return json.dumps(data, separators=(",", ":")).encode()


def read_record(data: bytes) -> RunRecord:
    """A record as ``kflow`` writes it, or else what a JSON object with a run id says.
    ValueError when it is not a record (so it is left out as unreadable)."""
    try:
        return RunRecord.from_json(data)
    except (ValueError, TypeError, KeyError, AttributeError):
        raw = load_json(data)  # not JSON: ValueError, unreadable
        if not isinstance(raw, dict) or not is_run_id(raw.get("run_id")):
            raise ValueError("not a run record") from None
        return salvage(raw)


# one set of checks for both readers (see RunRecord.from_json): times in range, or missing
_text, _number, _integer = text_value, time_value, int_value


def _texts(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _attempts(name: str, raw: Any, unknown: set[Any]) -> list[AttemptRecord]:
    out = []
    for n, entry in enumerate(raw if isinstance(raw, list) else [], start=1):
        if not isinstance(entry, dict):
            continue
        number = _integer(entry.get("number")) or n
        number = number if 0 < number <= MAX_ATTEMPT else n
        started, ended = _number(entry.get("started")), _number(entry.get("ended"))
        if started is None:
            unknown.add((name, number))
        out.append(
            AttemptRecord(
                number=number,
                # no start time: none shown, and a duration of 0 (or none) in sums
                started=started if started is not None else (ended or 0.0),
                ended=ended,
                exit_code=_integer(entry.get("exit_code")),
                status=_text(entry.get("status")),
                reason=_text(entry.get("reason")),
                where=_text(entry.get("where")),
                log=_text(entry.get("log")),
                log_here=_text(entry.get("log_here")),
                free=entry.get("free") is True,
            )
        )
    return out


def _instances(raw: Any, unknown: set[Any]) -> dict[str, InstanceRecord]:
    if isinstance(raw, list):  # a list of entries that name themselves
        raw = {
            str(e.get("id") or e.get("name")): e
            for e in raw
            if isinstance(e, dict) and (e.get("id") or e.get("name"))
        }
    out = {}
    for name, entry in (raw if isinstance(raw, dict) else {}).items():
        entry = entry if isinstance(entry, dict) else {}
        out[str(name)] = InstanceRecord(
            status=_text(entry.get("status")),
            reason=_text(entry.get("reason")),
            detail=_text(entry.get("detail")),
            attempts=_attempts(str(name), entry.get("attempts"), unknown),
            requires=_texts(entry.get("requires")),
            ready=_number(entry.get("ready")),
            outputs=_texts(entry.get("outputs")),
            changes=_texts(entry.get("changes")),
        )
    return out


def salvage(raw: dict[str, Any]) -> PartialRecord:
    """What ``raw`` says, field by field; what it lacks (or has as another type) is empty."""
    unknown: set[Any] = {key for key in RUN_TIMES if _number(raw.get(key)) is None}
    params = raw.get("params")
    return PartialRecord(
        run_id=raw["run_id"],
        project=_text(raw.get("project")),
        targets=_texts(raw.get("targets")),
        params={str(k): v for k, v in params.items() if isinstance(v, str)}
        if isinstance(params, dict)
        else {},
        profile=_text(raw.get("profile")),
        executor=_text(raw.get("executor")),
        jobs=_integer(raw.get("jobs")) or 0,
        started=_number(raw.get("started")) or 0.0,
        ended=_number(raw.get("ended")),
        status=_text(raw.get("status")),
        exit_code=_integer(raw.get("exit_code")),
        host=_text(raw.get("host")),
        pid=_integer(raw.get("pid")) or 0,
        instances=_instances(raw.get("instances"), unknown),
        revision=_integer(raw.get("revision")) or 0,
        up_to_date=_texts(raw.get("up_to_date")),
        unknown=frozenset(unknown),
    )
