"""The CronJob schedule as kflow deploy checks it, and the deadlines derived from it."""

from __future__ import annotations

import pytest

from kflow.deploy.manifests import active_deadline, starting_deadline
from kflow.deploy.schedule import check_timezone, parse_schedule
from kflow.errors import UsageError


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("@hourly", 3600),
        ("@daily", 86400),
        ("*/5 * * * *", 300),
        ("0 2 * * *", 86400),
        ("30 4 * * mon-fri", 86400),
        ("0 9,17 * * *", 8 * 3600),
        ("0 0 * * 7", 7 * 86400),  # 7 is Sunday, as 0
        ("0 0 1 jan-jun/2 *", 60 * 86400),  # Jan 1 → Mar 1 of a leap year
    ],
)
def test_schedules_kubernetes_accepts_and_their_shortest_interval(
    expression: str, interval: int
) -> None:
    assert parse_schedule(expression).shortest_interval() == interval


@pytest.mark.parametrize(
    "expression",
    ["", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
     "* * * * 8", "*/0 * * * *", "5-1 * * * *", "@every 5m", "TZ=UTC 0 0 * * *", "a b c d e"],
)  # fmt: skip
def test_bad_schedules_are_usage_errors(expression: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_schedule(expression)
    assert caught.value.exit_code == 2
    assert "--schedule" in caught.value.message


def test_time_zones_are_iana_names() -> None:
    assert check_timezone("America/New_York") == "America/New_York"
    assert check_timezone("Etc/GMT+5") == "Etc/GMT+5"
    bad_names = ("CEST", "Europe/Atlantis", "", "/etc/passwd", "europe/berlin", "Europe/../UTC")
    files = ("localtime", "Local", "posixrules", "right/UTC", "posix/Europe/Berlin", "zone.tab")
    for bad in (*bad_names, *files):
        with pytest.raises(UsageError):
            check_timezone(bad)


def test_deadlines_follow_the_interval_within_bounds() -> None:
    assert starting_deadline(60) == 30
    assert starting_deadline(86400) == 3600
    assert active_deadline(60) == 600
    assert active_deadline(3600) == 36000
    assert active_deadline(86400) == 23 * 3600


@pytest.mark.parametrize(
    ("expression", "longest"),
    [
        ("*/15 * * * *", 900),
        ("@daily", 86400),
        ("0,1 2 * * *", 86400 - 60),  # twice a day, a minute apart: daily
        ("0 9,17 * * *", 16 * 3600),
        ("0 9-17 * * 1-5", 2 * 86400 + 16 * 3600),  # Friday 17:00 to Monday 9:00
        ("@weekly", 7 * 86400),
    ],
)
def test_the_longest_interval_of_a_schedule(expression: str, longest: int) -> None:
    assert parse_schedule(expression).longest_interval() == longest
