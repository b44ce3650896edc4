"""PATCH bodies: JSON merge patch, strategic merge patch (lists of named items merged by name),
and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
NOT_A_MAP = "json: cannot unmarshal array into Go value of type map[string]interface {}"
SUPPORTED = (JSON_PATCH, MERGE, STRATEGIC)  # server-side apply is not emulated


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == MERGE:
        if not isinstance(patch, dict):
            raise bad_request(NOT_A_MAP)
        merged: dict[str, Any] = merge_patch(target, patch, strategic=False)
        return merged
    if ctype == STRATEGIC:
        if not isinstance(patch, dict):
            raise bad_request(NOT_A_MAP)
        strategic: dict[str, Any] = merge_patch(target, patch, strategic=True)
        return strategic
    if ctype == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request(
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
            )
        return json_patch(target, patch)
    raise ApiError(
        415,
        f'the body of the request was in an unknown format - accepted media types include: '
        f'{", ".join(SUPPORTED)}',
        "UnsupportedMediaType",
    )


def merge_patch(target: Any, patch: Any, strategic: bool) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    if strategic and patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif strategic and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_named_list(result[key], value)
        else:
            result[key] = merge_patch(result.get(key), value, strategic)
    return result


def _merge_named_list(current: list[Any], patch: list[Any]) -> list[Any]:
    keyed = all(isinstance(x, dict) and "name" in x for x in patch) and all(
        isinstance(x, dict) and "name" in x for x in current
    )
    if not keyed or not patch:
        return copy.deepcopy(patch)
    out = copy.deepcopy(current)
    for item in patch:
        idx = next((i for i, x in enumerate(out) if x.get("name") == item["name"]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(copy.deepcopy(item))
        else:
            out[idx] = merge_patch(out[idx], item, strategic=True)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f'JSON pointer "{path}" must start with "/"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, dict):
            if part not in cur:
                raise ApiError(422, f"doc is missing path: /{'/'.join(parts)}", "Invalid")
            cur = cur[part]
        elif isinstance(cur, list):
            cur = cur[int(part)]
        else:
            raise ApiError(422, f"doc is missing path: /{'/'.join(parts)}", "Invalid")
    return cur


def json_patch(target: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    doc: Any = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise bad_request("Unexpected kind: missing op")
        kind, parts = op["op"], _pointer(op.get("path", ""))
        if kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise ApiError(422, "the server rejected our request due to an error in our "
                               "request", "Invalid")
            continue
        if kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = copy.deepcopy(_walk(doc, src))
            if kind == "move":
                _remove(doc, src)
            _add(doc, parts, value)
            continue
        if kind == "remove":
            _remove(doc, parts)
        elif kind == "add":
            _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            _walk(doc, parts)
            _remove(doc, parts)
            _add(doc, parts, copy.deepcopy(op.get("value")))
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    if not isinstance(doc, dict):
        raise bad_request("patch result is not an object")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> None:
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            parent.insert(int(last), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, f"doc is missing path: /{'/'.join(parts)}", "Invalid")


def _remove(doc: Any, parts: list[str]) -> None:
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.pop(int(last))
    elif isinstance(parent, dict):
        if last not in parent:
            raise ApiError(422, f"doc is missing path: /{'/'.join(parts)}", "Invalid")
        del parent[last]
