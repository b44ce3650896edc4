"""How `kflow build` shows its events: a live rich view, plain timestamped lines, or JSON lines."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kflow.run import events as ev
from kflow.run.logtail import visible


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def describe(event: ev.Event) -> str | None:
    """One line for an event, without a timestamp; None for events not worth a line.
    Control characters in names and reasons are shown escaped, never sent to the terminal."""
    line = _describe(event)
    return None if line is None else visible(line)


def _describe(event: ev.Event) -> str | None:
    if isinstance(event, ev.RunStarted):
        n = len(event.to_run)
        return f"run {event.run_id}: {n} to run, -j {event.jobs}, executor {event.executor}"
    if isinstance(event, ev.EnvNotPassed):
        lost = "; ".join(f"{task}: {', '.join(names)}" for task, names in event.tasks.items())
        return f"warning: the {event.executor} executor runs these tasks without: {lost}"
    if isinstance(event, ev.AttemptStarted):
        again = f" (attempt {event.attempt})" if event.attempt > 1 else ""
        return f"started {event.instance}{again}: {event.reason}"
    if isinstance(event, ev.InstanceSucceeded):
        return f"succeeded {event.instance} in {_seconds(event.duration)}"
    if isinstance(event, ev.AttemptFailed):
        return (
            f"retrying {event.instance}: attempt {event.attempt} failed ({event.reason}), "
            f"next in {_seconds(event.retry_in)}"
        )
    if isinstance(event, ev.InstanceFailed):
        return f"failed {event.instance}: {event.reason}"
    if isinstance(event, ev.InstanceSkipped):
        return f"skipped {event.instance}: {event.reason}"
    if isinstance(event, ev.WaitingForOtherRun):
        return f"waiting {event.instance}: held by {event.holder}"
    if isinstance(event, ev.InstanceReused):
        return f"reused {event.instance}: built by {event.holder}"
    if isinstance(event, ev.HeldByOtherRun):
        return f"held {event.instance}: by {event.holder} (--no-wait)"
    if isinstance(event, ev.LeaseLost):
        return f"lease lost {event.instance}: another run took it over; stopping ours and waiting"
    if isinstance(event, ev.Interrupting):
        return f"interrupted: stopping {len(event.running)} running"
    if isinstance(event, ev.RunFinished):
        return summary(event)
    return None


def summary(event: ev.RunFinished) -> str:
    parts = [f"{event.succeeded} succeeded"]
    for count, word in ((event.failed, "failed"), (event.skipped, "skipped")):
        if count:
            parts.append(f"{count} {word}")
    if event.reused:
        parts.append(f"{event.reused} reused from another run")
    return f"run {event.run_id} {event.status} in {_seconds(event.duration)}: {', '.join(parts)}"


class PlainView:
    """Not in a terminal (cron): one timestamped line per event, no escapes; log tails indented."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout

    def __call__(self, event: ev.Event) -> None:
        line = describe(event)
        if line is None:
            return
        text = f"{_clock(event.at)} {line}\n"
        if isinstance(event, ev.InstanceFailed) and event.log_tail:
            text += "".join(f"    | {row}\n" for row in visible(event.log_tail).split("\n"))
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        return None


class JsonView:
    """``--json``: one JSON object per event and line."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout

    def __call__(self, event: ev.Event) -> None:
        self.stream.write(json.dumps(event.to_dict()) + "\n")
        self.stream.flush()

    def close(self) -> None:
        return None


class LiveView:
    """In a terminal: what runs (with elapsed time) and the counts, redrawn in place."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(highlight=False)
        self.running: dict[str, float] = {}
        self.total = 0
        self.done = self.failed = self.skipped = 0
        self.started = time.monotonic()
        self.live = Live(self, console=self.console, refresh_per_second=4, transient=True)
        self._open = False

    def __rich__(self) -> RenderableType:
        queued = max(0, self.total - self.done - self.failed - self.skipped - len(self.running))
        head = Text.assemble(
            (f"{_seconds(time.monotonic() - self.started)}  ", "dim"),
            (f"{self.done} done", "green"),
            "  ",
            (f"{self.failed} failed", "red" if self.failed else "dim"),
            "  ",
            (f"{len(self.running)} running", "cyan"),
            "  ",
            (f"{queued} queued", "dim"),
        )
        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for name, since in list(self.running.items())[:20]:
            table.add_row(Text(_seconds(now - since), "dim"), Text(visible(name)))
        if len(self.running) > 20:
            table.add_row("", Text(f"… and {len(self.running) - 20} more", "dim"))
        return Group(head, table)

    def _print(self, *items: Any) -> None:
        self.console.print(*items)

    def __call__(self, event: ev.Event) -> None:
        if not self._open:
            self.live.start()
            self._open = True
        if isinstance(event, ev.RunStarted):
            self.total = len(event.to_run)
            self.started = time.monotonic()
        elif isinstance(event, ev.AttemptStarted):
            self.running[event.instance] = time.monotonic()
        elif isinstance(event, ev.InstanceSucceeded):
            self.running.pop(event.instance, None)
            self.done += 1
            self._print(Text.assemble(("✓ ", "green"), describe(event) or ""))
        elif isinstance(event, ev.AttemptFailed):
            self.running.pop(event.instance, None)
            self._print(Text.assemble(("↻ ", "yellow"), describe(event) or ""))
        elif isinstance(event, ev.InstanceFailed):
            self.running.pop(event.instance, None)
            self.failed += 1
            self._print(Text.assemble(("✗ ", "bold red"), describe(event) or ""))
            if event.log_tail:
                self._print(Text(visible(event.log_tail), "dim"))
        elif isinstance(event, ev.InstanceSkipped):
            self.skipped += 1
            self._print(Text.assemble(("- ", "dim"), describe(event) or ""))
        elif isinstance(event, ev.InstanceReused):
            self.done += 1
            self._print(Text.assemble(("= ", "green"), describe(event) or ""))
        elif isinstance(
            event, (ev.WaitingForOtherRun, ev.HeldByOtherRun, ev.Interrupting, ev.LeaseLost)
        ):
            self._print(Text.assemble(("… ", "yellow"), describe(event) or ""))
        elif isinstance(event, ev.EnvNotPassed):
            self._print(Text.assemble(("! ", "yellow"), describe(event) or ""))
        elif isinstance(event, ev.RunFinished):
            self.close()
            style = "green" if event.exit_code == 0 else "bold red"
            self._print(Text(summary(event), style))

    def close(self) -> None:
        if self._open:
            self.live.stop()
            self._open = False


View = PlainView | JsonView | LiveView


def make_view(as_json: bool) -> View:
    if as_json:
        return JsonView()
    console = Console(highlight=False)
    return LiveView(console) if console.is_terminal else PlainView()
