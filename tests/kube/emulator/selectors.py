"""Label and field selectors, parsed and matched like the API server does."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

_KEY_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_DNS_SUB = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(rf"^({_DNS_SUB}/)?{_KEY_NAME}$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # = != in notin exists !exists
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "in"):
            return has and labels[self.key] in self.values
        # != and notin match when the key is absent
        return not has or labels[self.key] not in self.values


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _check_key(key: str, raw: str) -> None:
    if not key or len(key.split("/")[-1]) > 63 or not _LABEL_KEY.match(key):
        raise bad_request(
            f"unable to parse requirement: <nil>: Invalid value: \"{key}\": name part must consist "
            "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character"
        )


def _check_value(value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise bad_request(
            f"unable to parse requirement: values[0][key]: Invalid value: \"{value}\": a valid "
            "label must be an empty string or consist of alphanumeric characters, '-', '_' or "
            "'.', and must start and end with an alphanumeric character"
        )


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text or not text.strip():
        return []
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise bad_request(
                f"unable to parse requirement: found '', expected: identifier: {text}"
            )
        m = re.match(r"^(\S+?)\s+(in|notin)\s*\((.*)\)$", part)
        if m:
            key, op, vals = m.group(1), m.group(2), m.group(3)
            values = tuple(v.strip() for v in vals.split(",")) if vals.strip() else ()
            _check_key(key, part)
            for v in values:
                _check_value(v)
            reqs.append(Requirement(key, op, values))
            continue
        m = re.match(r"^([^=!\s]+)\s*(==|=|!=)\s*(.*)$", part)
        if m:
            key, op, value = m.group(1), m.group(2), m.group(3).strip()
            _check_key(key, part)
            _check_value(value)
            reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
            continue
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, part)
            reqs.append(Requirement(key, "!exists"))
            continue
        if re.match(r"^\S+$", part):
            _check_key(part, part)
            reqs.append(Requirement(part, "exists"))
            continue
        raise bad_request(f"unable to parse requirement: found '{part}', expected: in, notin, =")
    return reqs


def labels_match(reqs: list[Requirement], obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


# --- field selectors --------------------------------------------------------------------------


def _get_path(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, list):  # status.podIPs
        return ",".join(str(x.get("ip", "")) if isinstance(x, dict) else str(x) for x in cur)
    return str(cur)


POD_FIELDS = {
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
}
EVENT_FIELDS = {
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}
GENERIC_FIELDS = {"metadata.name", "metadata.namespace"}

FieldReq = tuple[str, str, str]


def parse_field_selector(text: str | None, allowed: set[str]) -> list[FieldReq]:
    if not text or not text.strip():
        return []
    reqs: list[FieldReq] = []
    for raw in text.split(","):
        part = raw.strip()
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise bad_request(f'field label not supported: {field}')
        reqs.append((field, "!=" if op == "!=" else "=", value))
    return reqs


def fields_match(reqs: list[FieldReq], obj: dict[str, Any]) -> bool:
    for field, op, value in reqs:
        if field == "source":
            actual = _get_path(obj, "source.component")
        elif field == "spec.hostNetwork":
            actual = _get_path(obj, field) or "false"
        else:
            actual = _get_path(obj, field)
        if (actual == value) != (op == "="):
            return False
    return True


def make_filter(
    label_selector: str | None, field_selector: str | None, allowed_fields: set[str]
) -> Callable[[dict[str, Any]], bool]:
    lreqs = parse_label_selector(label_selector)
    freqs = parse_field_selector(field_selector, allowed_fields)

    def _match(obj: dict[str, Any]) -> bool:
        return labels_match(lreqs, obj) and fields_match(freqs, obj)

    return _match


def validate_label_key(key: str) -> str | None:
    """Returns an error detail, or None when ``key`` is a valid label/annotation key."""
    if "/" in key:
        prefix, name = key.split("/", 1)
        if not prefix or len(prefix) > 253 or not re.fullmatch(_DNS_SUB, prefix):
            return "prefix part a lowercase RFC 1123 subdomain must consist of lower case " \
                "alphanumeric characters, '-' or '.', and must start and end with an " \
                "alphanumeric character (e.g. 'example.com', regex used for validation is " \
                f"'{_DNS_SUB}')"
    else:
        name = key
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not re.fullmatch(_KEY_NAME, name):
        return "name part must consist of alphanumeric characters, '-', '_' or '.', and must " \
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or " \
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    return None


def validate_label_value(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE.match(value):
        return "a valid label must be an empty string or consist of alphanumeric characters, " \
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. " \
            "'MyValue',  or 'my_value',  or '12345', regex used for validation is " \
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    return None

