"""Kubernetes ``Status`` error objects (§3.5 of the research note) as a Python exception."""

from __future__ import annotations

from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(
    code: int,
    message: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason if reason is not None else REASONS.get(code, ""),
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    """Raised by handlers; the HTTP layer turns it into a Status response."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.metadata = metadata or {}
        self.code = code
        self.message = message
        self.reason = reason
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body = status_body(self.code, self.message, self.reason, self.details)
        body["metadata"] = dict(self.metadata)
        return body


def qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError(404, f'{qualified(resource, group)} "{name}" not found', "NotFound", details)


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return ApiError(
        409, f'{qualified(resource, group)} "{name}" already exists', "AlreadyExists", details
    )


def conflict(resource: str, name: str, group: str = "", why: str | None = None) -> ApiError:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    why = why or (
        "the object has been modified; please apply your changes to the latest version and try "
        "again"
    )
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        "Conflict",
        details,
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def expired(message: str) -> ApiError:
    return ApiError(410, message, "Expired")


class FieldError:
    """One validation cause (k8s.io/apimachinery/pkg/util/validation/field.Error)."""

    def __init__(self, kind: str, field: str, value: Any = None, detail: str = "") -> None:
        self.kind = kind  # Invalid | Required | Duplicate | NotSupported | Forbidden | TooLong
        self.field = field
        self.value = value
        self.detail = detail

    def body_message(self) -> str:
        if self.kind == "Required":
            text = "Required value"
        elif self.kind == "Forbidden":
            text = "Forbidden"
        elif self.kind == "Duplicate":
            return f"Duplicate value: {_fmt(self.value)}"
        elif self.kind == "NotSupported":
            text = f"Unsupported value: {_fmt(self.value)}"
        elif self.kind == "TooLong":
            text = f"Too long: {self.detail}"
            return text
        else:
            text = f"Invalid value: {_fmt(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def message(self) -> str:
        return f"{self.field}: {self.body_message()}"

    def cause(self) -> dict[str, str]:
        reason = {
            "Required": "FieldValueRequired",
            "Forbidden": "FieldValueForbidden",
            "Duplicate": "FieldValueDuplicate",
            "NotSupported": "FieldValueNotSupported",
            "TooLong": "FieldValueTooLong",
        }.get(self.kind, "FieldValueInvalid")
        return {"reason": reason, "message": self.body_message(), "field": self.field}


class RawValue:
    """A value printed verbatim in a field error (Go's ``%v`` of a nil pointer: ``0x0``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def invalid(kind: str, name: str, errors: list[FieldError], group: str = "") -> ApiError:
    """422 Invalid, formatted like apimachinery's ``errors.NewInvalid``."""
    qual = f"{kind}.{group}" if group else kind
    if len(errors) == 1:
        text = errors[0].message()
    else:
        text = "[" + ", ".join(e.message() for e in errors) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": [e.cause() for e in errors]}
    if group:
        details["group"] = group
    return ApiError(422, f'{qual} "{name}" is invalid: {text}', "Invalid", details)
