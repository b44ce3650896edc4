"""Templates: ``{name}`` placeholders in commands, paths and env values.

Substitution works on argv items, never on a shell line, so a parameter value
like ``x; rm -rf /`` reaches the program as one argument. Only with
``shell = true`` is a string handed to ``sh -c``, and then every substituted
value is shell-quoted.

``{{`` and ``}}`` stand for literal braces. A placeholder may carry a format
spec for typed values: ``{date:%Y/%m/%d}``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kflow.errors import DefinitionError, Location, did_you_mean
from kflow.model import ParamSpec, ParamValue, TaskSpec

# A scope maps template names to a single value or, for {inputs}/{outputs}, a list of paths.
ScopeValue = ParamValue | Sequence[str]
Scope = Mapping[str, ScopeValue]

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_.-]+)?$")


@dataclass(frozen=True)
class Placeholder:
    name: str
    spec: str = ""


Part = str | Placeholder


def parse(template: str, where: Location) -> list[Part]:
    """Split a template into literal text and placeholders; malformed braces are errors."""
    try:
        return list(_parse_cached(template))
    except _Malformed as exc:
        raise DefinitionError(exc.message, where, exc.hint) from None


class _Malformed(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@functools.lru_cache(maxsize=1 << 17)
def _parse_cached(template: str) -> tuple[Part, ...]:
    # Templates repeat across thousands of instances: parse each text once. Loading and
    # expanding ask for each again, so the cache holds every template of a project of
    # 10,000s of distinct tasks (a smaller one is emptied before the second pass).
    parts: list[Part] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        if match.start() > pos:
            parts.append(template[pos : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif token in ("{", "}"):
            raise _Malformed(f"unbalanced '{token}' in template {template!r}", "write '{{' or '}}'")
        else:
            body = match.group(1)
            name, _, spec = body.partition(":")
            if not _NAME.match(name):
                raise _Malformed(
                    f"bad placeholder '{{{body}}}' in {template!r}",
                    literal_brace_hint(template, body) or "write '{{' and '}}' for literal braces",
                )
            parts.append(Placeholder(name, spec))
        pos = match.end()
    if pos < len(template):
        parts.append(template[pos:])
    return tuple(_merge_text(parts))


def literal_brace_hint(template: str, name: str) -> str | None:
    """For a shell's ``${VAR}`` or ``${VAR-default}`` taken for a placeholder: how to write it."""
    found = re.search(r"\$\{(" + re.escape(name) + r"(?![\w.])[^{}]*)\}", template)
    return f"write '${{{{{found.group(1)}}}}}' for a literal brace" if found else None


def _merge_text(parts: list[Part]) -> list[Part]:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


def names_in(template: str, where: Location) -> list[str]:
    """The placeholder names a template uses, in order of appearance."""
    return [p.name for p in parse(template, where) if isinstance(p, Placeholder)]


def format_value(value: ScopeValue, spec: str = "") -> str:
    """Render one value as text: dates in ISO form, booleans as true/false, lists space-joined."""
    if not spec and type(value) in _PLAIN:  # the common case first: str() is what format() does
        return str(value)
    if isinstance(value, bool):
        return format("true" if value else "false", spec)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.strftime(spec) if spec else value.isoformat()
    if isinstance(value, (str, int, float)):
        return format(value, spec)
    return " ".join(format_value(item, spec) for item in value)


_PLAIN = (str, int, float)


def _lookup(scope: Scope, name: str, where: Location, template: str) -> ScopeValue:
    try:
        return scope[name]
    except KeyError:
        raise DefinitionError(
            f"undefined template name '{{{name}}}' in {template!r}",
            where,
            literal_brace_hint(template, name)
            or did_you_mean(name, scope)
            or f"known names: {', '.join(sorted(scope))}",
        ) from None


def render(
    template: str,
    scope: Scope,
    where: Location,
    quote: Callable[[str], str] | None = None,
) -> str:
    """Substitute every placeholder; list values are joined with spaces (each quoted if asked)."""
    parts = parse(template, where)
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    return _render_parts(parts, scope, where, template, quote)


def _render_parts(
    parts: Sequence[Part],
    scope: Scope,
    where: Location,
    template: str,
    quote: Callable[[str], str] | None,
) -> str:
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = _lookup(scope, part.name, where, template)
        if quote is None:
            out.append(
                value if type(value) is str and not part.spec else format_value(value, part.spec)
            )
        elif isinstance(value, (list, tuple)):
            out.append(" ".join(quote(format_value(item, part.spec)) for item in value))
        else:
            out.append(quote(format_value(value, part.spec)))
    return "".join(out)


Renderer = Callable[[Scope], str]


def compile_template(
    template: str, where: Location, quote: Callable[[str], str] | None = None
) -> Renderer:
    """``render(template, scope, where, quote)`` as a function of the scope, parsed once.

    A task's templates are rendered for each of its thousands of instances: literals
    and lone placeholders (the common cases) then cost a lookup, not a parse.
    """
    parts = tuple(parse(template, where))
    if all(isinstance(part, str) for part in parts):
        text = "".join(parts)  # type: ignore[arg-type]
        return lambda scope: text
    first = parts[0]
    if len(parts) == 1 and isinstance(first, Placeholder) and quote is None:
        name, spec = first.name, first.spec

        def lone(scope: Scope) -> str:
            value = scope[name] if name in scope else _lookup(scope, name, where, template)
            return value if type(value) is str and not spec else format_value(value, spec)

        return lone
    if quote is not None:
        return lambda scope: _render_parts(parts, scope, where, template, quote)
    # (literal, None, "") or ("", name, spec) per part: the loop of _render_parts, unrolled
    steps = [
        (part, None, "") if isinstance(part, str) else ("", part.name, part.spec) for part in parts
    ]

    def joined(scope: Scope) -> str:
        out: list[str] = []
        for literal, name, spec in steps:
            if name is None:
                out.append(literal)
                continue
            value = scope[name] if name in scope else _lookup(scope, name, where, template)
            out.append(value if type(value) is str and not spec else format_value(value, spec))
        return "".join(out)

    return joined


def split_command(command: str, where: Location) -> list[str]:
    """Split a string command the way a POSIX shell would, without running one."""
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise DefinitionError(f"cannot split command {command!r}: {exc}", where) from None


def render_argv(items: Sequence[str], scope: Scope, where: Location) -> list[str]:
    """Substitute into each argv item; an item that is exactly a list-valued placeholder expands.

    ``"{inputs}"`` alone becomes one item per path; anywhere else a list joins with spaces
    into the one item it is part of.
    """
    return compile_argv(items, where)(scope)


def compile_argv(items: Sequence[str], where: Location) -> Callable[[Scope], list[str]]:
    """``render_argv(items, ·, where)`` as a function of the scope, each item parsed once."""
    # Per item: a renderer, or None for a lone placeholder (whose list value expands).
    steps: list[tuple[Renderer | None, str, str, str]] = []  # (renderer, name, spec, item)
    for item in items:
        parts = parse(item, where)
        if len(parts) == 1 and isinstance(parts[0], Placeholder):
            steps.append((None, parts[0].name, parts[0].spec, item))
        else:
            steps.append((compile_template(item, where), "", "", item))

    def argv(scope: Scope) -> list[str]:
        out: list[str] = []
        for renderer, name, spec, item in steps:
            if renderer is not None:
                out.append(renderer(scope))
                continue
            value = scope[name] if name in scope else _lookup(scope, name, where, item)
            if isinstance(value, (list, tuple)):
                out.extend(format_value(v, spec) for v in value)
            else:
                out.append(value if type(value) is str and not spec else format_value(value, spec))
        return out

    return argv


def resolve_command(
    command: Sequence[str] | str, shell: bool, scope: Scope, where: Location
) -> list[str]:
    """The argv a task instance runs: split-then-substitute, or ``sh -c`` with quoted values."""
    return compile_command(command, shell, where)(scope)


def compile_command(
    command: Sequence[str] | str, shell: bool, where: Location
) -> Callable[[Scope], list[str]]:
    """``resolve_command(command, shell, ·, where)`` as a function of the scope, parsed once."""
    if shell:
        line = compile_template(
            command if isinstance(command, str) else " ".join(command), where, shlex.quote
        )
        return lambda scope: ["sh", "-c", line(scope)]
    items = split_command(command, where) if isinstance(command, str) else list(command)
    return compile_argv(items, where)


def pattern_regex(
    template: str, fixed: Mapping[str, str], where: Location
) -> tuple[re.Pattern[str], list[Placeholder]]:
    """A regex matching paths the template can produce, one group per parameter placeholder.

    ``fixed`` supplies names already known (``root``, ``task``). Used to turn an
    output path on the command line back into parameter values (Make pattern rules).
    """
    regex: list[str] = []
    groups: list[Placeholder] = []
    for part in parse(template, where):
        if isinstance(part, str):
            regex.append(re.escape(part))
        elif part.name in fixed:
            regex.append(re.escape(fixed[part.name]))
        else:
            # A value never spans path segments unless its format spec says so (%Y/%m).
            allowed = ".+?" if "/" in part.spec else "[^/]+?"
            regex.append(f"(?P<g{len(groups)}>{allowed})")
            groups.append(part)
    return re.compile("".join(regex) + r"\Z"), groups


# Requirement values with arithmetic: "{date-1d}", "{n+1}", and ranges "{date-6d}..{date}".
# Only the values of `requires` entries take these: they pick other instances, and a
# window or yesterday's instance is what data pipelines most often need after pass-through.
_OFFSET = re.compile(r"^\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*([+-])\s*(\d+)\s*([A-Za-z]*)\s*\}$")
_OFFSET_LIKE = re.compile(r"\{\s*[A-Za-z_][A-Za-z0-9_]*\s*[+-][^{}]*\}")
_UNITS = {"d": 1, "w": 7}  # days per unit, for dates and datetimes
_HOUR_UNITS = {"h": 1}  # hours, for datetimes only
_RANGE_LIMIT = 100_000  # as --param ranges: a typo must fail, not eat the machine
OFFSET_HELP = (
    "write {date-1d}, {date+2w} (days, weeks; h for hours of a datetime), {n+1} for ints, "
    "or a range {date-6d}..{date}"
)


@dataclass(frozen=True)
class _End:
    """One end of a requirement value: a placeholder with an offset, or a template."""

    template: str
    name: str | None = None  # set for "{name}" and "{name±N[unit]}"
    amount: int = 0
    unit: str = ""


def compile_requirement_value(
    text: str, where: Location
) -> tuple[tuple[str, ...], Callable[..., object]] | None:
    """``"{date-1d}"`` or ``"A..B"`` → (the names it reads, a function of their values).

    None for a plain template (it is rendered as any other). The function returns one
    typed value for an offset and the list of values for a range (dates by day, ints by
    one). Bad syntax raises DefinitionError at ``where``; a value of the wrong kind (an
    offset in days on an int) raises it when the function runs.
    """
    ends = _split_range(text)
    if ends is None:
        if not _OFFSET_LIKE.search(text):
            return None
        end = _end(text, text, where)
        return _names(end, where), _Offset(end, text, where)
    first, last = (_end(part, text, where) for part in ends)
    names = tuple(dict.fromkeys(_names(first, where) + _names(last, where)))
    return names, _Window(first, last, text, where)


# Classes, not closures: a project's graph is cached with pickle (kflow.load.cache).
@dataclass(frozen=True)
class _Offset:
    end: _End
    text: str
    where: Location

    def __call__(self, **values: ParamValue) -> object:
        return _evaluate(self.end, values, self.text, self.where)


@dataclass(frozen=True)
class _Window:
    first: _End
    last: _End
    text: str
    where: Location

    def __call__(self, **values: ParamValue) -> list[ParamValue]:
        start = _evaluate(self.first, values, self.text, self.where)
        end = _evaluate(self.last, values, self.text, self.where)
        start, end = _same_type(start, end, self.text, self.where)
        return _range(start, end, self.text, self.where)


def _split_range(text: str) -> tuple[str, str] | None:
    depth = 0
    for index, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0 and text.startswith("..", index):
            first, last = text[:index], text[index + 2 :]
            return (first, last) if first and last else None
    return None


def _end(part: str, text: str, where: Location) -> _End:
    match = _OFFSET.match(part.strip())
    if match is not None:
        name, sign, amount, unit = match.groups()
        if unit and unit not in _UNITS and unit not in _HOUR_UNITS:
            raise DefinitionError(f"bad offset unit {unit!r} in {text!r}", where, OFFSET_HELP)
        return _End(part, name, int(amount) * (-1 if sign == "-" else 1), unit)
    if _OFFSET_LIKE.search(part):
        raise DefinitionError(f"bad offset in {text!r}", where, OFFSET_HELP)
    lone = parse(part.strip(), where)
    if len(lone) == 1 and isinstance(lone[0], Placeholder) and not lone[0].spec:
        return _End(part, lone[0].name)
    return _End(part)


def _names(end: _End, where: Location) -> tuple[str, ...]:
    return (end.name,) if end.name else tuple(names_in(end.template, where))


def _evaluate(end: _End, values: Mapping[str, ParamValue], text: str, where: Location) -> object:
    if end.name is None:  # a literal or a template: its text, typed later
        return render(end.template.strip(), values, where)
    value = values[end.name]
    if not end.amount and not end.unit:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, dt.date)):
        raise DefinitionError(
            f"{text!r}: {end.name} is {type(value).__name__} {value!r}; offsets apply to "
            "dates, datetimes and ints",
            where,
        )
    if isinstance(value, int):
        if end.unit:
            raise DefinitionError(
                f"{text!r}: {end.name} is an int; an offset on it is a plain number",
                where,
                f"write {{{end.name}{end.amount:+d}}}",
            )
        return value + end.amount
    if end.unit in _UNITS:
        return value + dt.timedelta(days=end.amount * _UNITS[end.unit])
    if end.unit in _HOUR_UNITS and isinstance(value, dt.datetime):
        return value + dt.timedelta(hours=end.amount)
    unit = "d (days) or w (weeks)" + (", h (hours)" if isinstance(value, dt.datetime) else "")
    raise DefinitionError(
        f"{text!r}: {end.name} is a {type(value).__name__}; its offset needs a unit: {unit}",
        where,
        f"write {{{end.name}{end.amount:+d}d}}",
    )


def _same_type(start: object, end: object, text: str, where: Location) -> tuple[object, object]:
    """A literal end of a range takes the type of the other end (or int, else date)."""
    if isinstance(start, str) and isinstance(end, str):
        start = _literal(start, None, text, where)
    if isinstance(start, str):
        start = _literal(start, end, text, where)
    if isinstance(end, str):
        end = _literal(end, start, text, where)
    return start, end


def _literal(part: str, other: object, text: str, where: Location) -> object:
    try:
        if isinstance(other, dt.datetime):
            return dt.datetime.fromisoformat(part)
        if isinstance(other, dt.date):
            return dt.date.fromisoformat(part)
        if isinstance(other, int) and not isinstance(other, bool):
            return int(part)
        try:
            return int(part)
        except ValueError:
            return dt.date.fromisoformat(part)
    except ValueError:
        raise DefinitionError(
            f"range {text!r}: {part!r} is not a date (YYYY-MM-DD) or an int", where
        ) from None


def _range(start: object, end: object, text: str, where: Location) -> list[ParamValue]:
    """Every value from ``start`` to ``end`` inclusive; empty when the end comes first."""
    if isinstance(start, dt.datetime) or isinstance(end, dt.datetime):
        raise DefinitionError(f"range {text!r}: a range needs dates or ints, not datetimes", where)
    if isinstance(start, dt.date) and isinstance(end, dt.date):
        count = (end - start).days + 1
        _check_count(count, text, where)
        return [start + dt.timedelta(days=i) for i in range(max(count, 0))]
    if (
        isinstance(start, int)
        and isinstance(end, int)
        and not isinstance(start, bool)
        and not isinstance(end, bool)
    ):
        _check_count(end - start + 1, text, where)
        return list(range(start, end + 1))
    raise DefinitionError(
        f"range {text!r}: from {start!r} to {end!r}: a range needs two dates or two ints", where
    )


def _check_count(count: int, text: str, where: Location) -> None:
    if count > _RANGE_LIMIT:
        raise DefinitionError(f"range {text!r} has {count} values, more than {_RANGE_LIMIT}", where)


# -- which parameters a task binds ---------------------------------------------------


def task_param_names(task: TaskSpec, params: Mapping[str, ParamSpec]) -> tuple[str, ...]:
    """The parameters a task's instances bind: matrix keys, explicit ``params``, and every
    project parameter its templates mention. Sorted, so ids are stable."""
    found = set(task.matrix) | set(task.params)
    for template in _templates_of(task):
        for name in names_in(template, task.location):
            if name in params:
                found.add(name)
    return tuple(sorted(found))


def _templates_of(task: TaskSpec) -> list[str]:
    command = [task.command] if isinstance(task.command, str) else list(task.command)
    env = [var.value for var in task.env if var.value is not None]
    required = [value for req in task.requires for value in req.params.values()]
    return command + list(task.inputs) + [t for _, t in task.outputs] + env + required
