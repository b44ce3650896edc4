"""What made each instance of a run run, old → new in full, kept in the run record: after
the run, ``kflow plan --why`` sees the new state and can no longer say what it was.

Only decisions with a change to show (a fingerprint or an input that changed) keep lines:
"output missing" or "forced" say all in the reason. Capped in bytes, per instance and per
run, as log tails are: a record is rewritten every few seconds while the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterable

from kflow.plan import Check, Plan, Reason
from kflow.run.logtail import human_bytes, visible
from kflow.run.records import RunRecord

WITH_CHANGES = (Reason.FINGERPRINT_CHANGED, Reason.INPUT_CHANGED)
CHANGES_BYTES = 4096  # per instance
RUN_CHANGES_BYTES = 2_000_000  # per run: a changed command in a 10,000-instance fan-out


def check_lines(checks: Iterable[Check]) -> list[str]:
    """The stale steps of a decision as ``plan --why`` prints them, with their change."""
    out = []
    for check in checks:
        if check.stale:
            out.append(f"{check.name}: {check.detail}")
            out.extend(f"  {line}" for line in check.lines)
    return out


def head(lines: list[str], max_bytes: int) -> list[str]:
    """The first ``max_bytes`` of ``lines`` (a line too long is cut on a character
    boundary; control characters escaped), and a last line saying how much was left out."""
    shown = [visible(line).encode() for line in lines]
    kept: list[str] = []
    room = max_bytes
    for n, line in enumerate(shown):
        if len(line) + 1 > room:
            part = line[: max(0, room - 1)].decode("utf-8", "ignore")
            rest = sum(len(x) + 1 for x in shown[n:]) - len(part.encode())
            return [*kept, *([part] if part else []), f"\u2026 {human_bytes(rest)} more, not kept"]
        kept.append(line.decode())
        room -= len(line) + 1
    return kept


def record_changes(record: RunRecord, plan: Plan) -> None:
    """Each instance to run whose decision has a change: its lines, in its record entry."""
    budget = RUN_CHANGES_BYTES
    for iid in plan.to_run:
        entry = record.instances.get(str(iid))
        if entry is None or plan.decisions[iid].reason not in WITH_CHANGES:
            continue
        if budget <= 0:
            entry.changes = ["\u2026 not kept: this run's changes passed its byte budget"]
            continue
        entry.changes = head(check_lines(plan.checks(iid)), min(CHANGES_BYTES, budget))
        budget -= sum(len(line.encode()) + 1 for line in entry.changes)
