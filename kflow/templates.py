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
from kflow.model import ParamValue

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


@functools.lru_cache(maxsize=8192)
def _parse_cached(template: str) -> tuple[Part, ...]:
    # Templates repeat across thousands of instances: parse each text once.
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
