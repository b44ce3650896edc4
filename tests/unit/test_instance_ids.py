import pytest
from hypothesis import given
from hypothesis import strategies as st

from kflow.model import InstanceId, parse_instance_id


def test_id_is_stable_whatever_the_parameter_order() -> None:
    a = InstanceId.of("clean", {"region": "eu", "date": "2026-11-24"})
    b = InstanceId.of("clean", {"date": "2026-11-24", "region": "eu"})
    assert str(a) == str(b) == "clean[date=2026-11-24,region=eu]"


def test_ids_parse_back_in_any_order() -> None:
    assert parse_instance_id("clean[region=eu,date=2026-11-24]") == InstanceId.of(
        "clean", {"date": "2026-11-24", "region": "eu"}
    )
    assert parse_instance_id("report") == InstanceId("report")


def test_values_with_separators_are_quoted() -> None:
    iid = InstanceId.of("t", {"q": 'a,b]="c"', "n": "x y"})
    assert str(iid) == 't[n="x y",q="a,b]=\\"c\\""]'
    assert parse_instance_id(str(iid)) == iid


@pytest.mark.parametrize("bad", ["clean[", "clean[region]", "[x=1]", "t[a=1,a=2]", 't[a="x]'])
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_instance_id(bad)


@given(
    st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.text(max_size=12), max_size=4)
)
def test_any_id_round_trips(params: dict[str, str]) -> None:
    iid = InstanceId.of("task", params)
    assert parse_instance_id(str(iid)) == iid
