import datetime as dt

import pytest

from kflow.model import ParamSpec, ParamType
from kflow.params import ParamValueError, parse_value, parse_values, zone

UTC = dt.timezone.utc


def test_date_range_expands_to_every_day() -> None:
    values = parse_values(ParamSpec("date", ParamType.DATE), "2026-11-01..2026-11-24", UTC)
    assert len(values) == 24
    assert values[0] == dt.date(2026, 11, 1) and values[-1] == dt.date(2026, 11, 24)


def test_int_range_and_single_values() -> None:
    assert parse_values(ParamSpec("n", ParamType.INT), "3..5", UTC) == [3, 4, 5]
    assert parse_values(ParamSpec("s", ParamType.STR), "a..b", UTC) == ["a..b"]


def test_today_and_yesterday_follow_the_configured_time_zone() -> None:
    now = dt.datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    tokyo = zone("Asia/Tokyo")
    assert parse_value(ParamType.DATE, "today", UTC, now) == dt.date(2026, 11, 24)
    assert parse_value(ParamType.DATE, "today", tokyo, now.astimezone(tokyo)) == dt.date(
        2026, 11, 25
    )
    assert parse_value(ParamType.DATE, "yesterday", UTC, now) == dt.date(2026, 11, 23)


@pytest.mark.parametrize(
    ("ptype", "text", "value"),
    [
        (ParamType.BOOL, "yes", True),
        (ParamType.BOOL, "false", False),
        (ParamType.FLOAT, "0.5", 0.5),
        (ParamType.DATETIME, "2026-11-24T10:00", dt.datetime(2026, 11, 24, 10, 0)),
    ],
)
def test_typed_values(ptype: ParamType, text: str, value: object) -> None:
    assert parse_value(ptype, text, UTC) == value


@pytest.mark.parametrize(
    ("ptype", "text"),
    [(ParamType.INT, "1.5"), (ParamType.BOOL, "maybe"), (ParamType.DATE, "2026-02-30")],
)
def test_bad_values_say_what_would_be_valid(ptype: ParamType, text: str) -> None:
    with pytest.raises(ParamValueError, match="not a valid"):
        parse_value(ptype, text, UTC)


def test_unknown_time_zone() -> None:
    with pytest.raises(ParamValueError, match="unknown time zone"):
        zone("Mars/Olympus")
