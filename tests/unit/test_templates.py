import datetime as dt

import pytest

from kflow.errors import DefinitionError, Location
from kflow.templates import names_in, pattern_regex, render, resolve_command

WHERE = Location("kflow.toml", "tasks.t.command")


def test_parameter_with_shell_metacharacters_stays_one_argument() -> None:
    argv = resolve_command(
        "python clean.py --region {region}", False, {"region": "x; rm -rf /"}, WHERE
    )
    assert argv == ["python", "clean.py", "--region", "x; rm -rf /"]


def test_shell_commands_quote_every_substituted_value() -> None:
    argv = resolve_command(
        "echo {region} > {output}", True, {"region": "x; rm -rf /", "output": "o.txt"}, WHERE
    )
    assert argv == ["sh", "-c", "echo 'x; rm -rf /' > o.txt"]


def test_list_template_alone_expands_to_one_item_per_path() -> None:
    scope = {"inputs": ["a.csv", "b c.csv"], "output": "r.html"}
    assert resolve_command(["report", "{inputs}", "--out", "{output}"], False, scope, WHERE) == [
        "report",
        "a.csv",
        "b c.csv",
        "--out",
        "r.html",
    ]
    # inside a larger item a list joins with spaces into that one item
    assert resolve_command(["--files={inputs}"], False, scope, WHERE) == ["--files=a.csv b c.csv"]


def test_string_command_is_split_like_a_shell_without_running_one() -> None:
    argv = resolve_command("""python -c 'print("hi there")' {x}""", False, {"x": "a b"}, WHERE)
    assert argv == ["python", "-c", 'print("hi there")', "a b"]


def test_braces_can_be_escaped_and_dates_formatted() -> None:
    scope = {"date": dt.date(2026, 11, 24)}
    assert render("{{literal}} {date} {date:%Y/%m}", scope, WHERE) == "{literal} 2026-11-24 2026/11"


def test_undefined_name_suggests_the_closest() -> None:
    with pytest.raises(DefinitionError) as err:
        render("{dat}", {"date": "x"}, WHERE)
    assert "did you mean 'date'" in str(err.value)


def test_names_in_lists_placeholders() -> None:
    assert names_in("{root}/clean/{region}/{date:%Y}.csv", WHERE) == ["root", "region", "date"]


def test_pattern_regex_binds_parameters_from_a_path() -> None:
    regex, groups = pattern_regex("{root}/clean/{region}/{date}.csv", {"root": "data"}, WHERE)
    match = regex.match("data/clean/eu/2026-11-24.csv")
    assert match is not None
    assert [g.name for g in groups] == ["region", "date"]
    assert match.groups() == ("eu", "2026-11-24")
    assert regex.match("data/clean/eu/x/2026-11-24.csv") is None
