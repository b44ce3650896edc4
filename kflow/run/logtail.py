"""A log's tail as people see it, the same in every place that shows one: the terminal's
failure lines, JUnit ``<failure>`` text, and the report in HTML, Markdown and JSON.

Capped by lines AND bytes (a task that prints one 30 MB line must not make a 60 MB
report), cut on a UTF-8 boundary, saying what was left out and how to see it all; control
characters (ESC, NUL, …) are shown escaped, never passed on raw to a terminal or a file.
"""

from __future__ import annotations

import re
import shlex

TAIL_LINES = 20
TAIL_BYTES = 4096  # 20 lines of 200 bytes; a report holds up to 2,000 tails

# C0 and C1 controls but newline and tab, DEL, and the bidi overrides that reorder text
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with control characters written out (``\\x1b``, ``\\u202e``): a name or a
    log line can never move the cursor, clear a screen or hide text where it is shown."""
    return _CONTROL.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def human_bytes(size: int) -> str:
    """``29_900_000`` → ``"29.9 MB"`` (decimal units, as ``ls -h --si``)."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


def _utf8_start(data: bytes, start: int) -> int:
    """The first character boundary at or after ``start`` (skips continuation bytes)."""
    limit = min(len(data), start + 3)
    while start < limit and data[start] & 0xC0 == 0x80:
        start += 1
    return start


def log_tail(
    data: bytes,
    run_id: str = "",
    instance: str = "",
    lines: int = TAIL_LINES,
    max_bytes: int = TAIL_BYTES,
) -> str:
    """The last ``lines`` lines of ``data``, at most ``max_bytes`` of it. When something was
    left out, a first line says how much and (given the run and instance) which command
    shows the whole log: ``… 29.9 MB more; kflow logs RUN INSTANCE``."""
    body = data.rstrip(b"\n")
    start = _utf8_start(body, max(0, len(body) - max_bytes))
    cut = len(body)
    for _ in range(lines):  # back from the end, one newline per line kept
        found = body.rfind(b"\n", start, cut)
        if found < 0:
            cut = start  # fewer lines than that within the byte cap: keep all of it
            break
        cut = found
    else:
        cut += 1  # the tail begins after the newline that ends the line before it
    kept = body[cut:]
    rows = kept.decode("utf-8", "replace").split("\n")
    text = visible("\n".join(row.removesuffix("\r") for row in rows))
    if cut == 0:
        return text
    note = f"\u2026 {human_bytes(cut)} more"
    if run_id and instance:
        note += f"; kflow logs {shlex.quote(run_id)} {shlex.quote(instance)}"
    return f"{visible(note)}\n{text}"
