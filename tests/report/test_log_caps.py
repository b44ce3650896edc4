"""Log tails are capped by lines and bytes everywhere one is shown (report HTML, Markdown,
JSON, JUnit XML, the build's own failure lines), say what was left out, and show control
characters escaped: a task printing one 6 MB line makes a small report, not a 12 MB one."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from kflow.run.logtail import log_tail, visible
from tests.helpers import kflow
from tests.report.caps import NOTE, built_caps, run_id

SMALL = 60_000  # bytes: a few capped tails and the page itself; the log alone is 6 MB


def test_every_format_caps_the_tail_of_a_6_mb_line_and_says_so(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    build = built_caps(tmp_path, "--junit", junit)
    run = run_id(tmp_path)
    note = f"\u2026 6.0 MB more; kflow logs {run} huge"
    # the terminal's failure lines (plain: not a terminal here)
    assert note in build.stdout and len(build.stdout) < SMALL
    page = tmp_path / "r.html"
    assert kflow("report", "-C", tmp_path, "-o", page).exit_code == 0
    assert page.stat().st_size < SMALL
    md = kflow("report", "-C", tmp_path, "--format", "md").stdout
    assert len(md) < SMALL
    model = json.loads(kflow("report", "-C", tmp_path, "--format", "json").stdout)
    (huge,) = [i for i in model["instances"] if i["id"] == "huge"]
    tail = huge["log_tail"]
    assert tail.startswith(note + "\n")
    shown = tail.split("\n", 1)[1]
    # 4 kB of three-byte characters, cut on a character boundary: no U+FFFD
    assert set(shown) == {"\u20ac"} and 4000 <= len(shown.encode()) <= 4096
    case = ET.parse(junit).find(".//testcase[@name='huge']/failure")
    assert case is not None and case.text is not None and case.text.startswith(note)
    assert junit.stat().st_size < SMALL


def test_a_tail_keeps_the_last_20_lines_and_says_how_much_came_before(tmp_path: Path) -> None:
    build = built_caps(tmp_path)
    model = json.loads(kflow("report", "-C", tmp_path, "--format", "json").stdout)
    (noisy,) = [i for i in model["instances"] if i["id"] == "noisy"]
    lines = noisy["log_tail"].split("\n")
    assert lines[0] == f"\u2026 234 B more; kflow logs {run_id(tmp_path)} noisy"
    assert lines[1:] == [str(n) for n in range(82, 101)] + ["esc \\x1b[2J nul \\x00 end"]
    assert "    | 82\n" in build.stdout and "    | 81\n" not in build.stdout


def test_control_characters_never_reach_markdown_junit_or_the_terminal_raw(
    tmp_path: Path,
) -> None:
    junit = tmp_path / "junit.xml"
    build = built_caps(tmp_path, "--junit", junit)
    md = kflow("report", "-C", tmp_path, "--format", "md").stdout
    for text in (build.stdout, build.stderr, md, junit.read_text()):
        assert not {"\x1b", "\x00", "\x07"} & set(text)
    assert "esc \\x1b[2J nul \\x00 end" in md and "esc \\x1b[2J nul \\x00 end" in build.stdout
    # the parameter value in an instance name: escaped in Markdown, the terminal and JUnit
    assert "named\\[note=\"\\\\x1b\\]0;pwned\\\\x07\"\\]" in md
    assert 'failed named[note="\\x1b]0;pwned\\x07"]' in build.stdout
    names = [c.get("name") for c in ET.parse(junit).iter("testcase")]
    assert 'named[note="\\x1b]0;pwned\\x07"]' in names
    assert visible(NOTE) == "\\x1b]0;pwned\\x07"


def test_log_tail_caps() -> None:
    assert log_tail(b"a\nb\nc\n") == "a\nb\nc"  # nothing left out: no note
    two = log_tail(b"a\nb\nc\n", "R", "t[x=1]", lines=2)
    assert two == "\u2026 2 B more; kflow logs R 't[x=1]'\nb\nc"
    assert log_tail(b"x" * 10 + b"\n", max_bytes=4) == "\u2026 6 B more\nxxxx"
    cut = log_tail("é".encode() * 10, max_bytes=5)  # byte 15 of 20 is inside a character
    assert cut == "\u2026 16 B more\néé"
    assert log_tail(b"\x1b[31mred\x00\r\n") == "\\x1b[31mred\\x00"  # CRLF: the CR goes
    assert log_tail(b"") == ""
