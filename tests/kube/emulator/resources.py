"""Resource types, request/response values shared by the HTTP layer and the handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .selectors import EVENT_FIELDS, GENERIC_FIELDS, POD_FIELDS


@dataclass(frozen=True)
class ResourceType:
    plural: str
    kind: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True
    fields: frozenset[str] = frozenset(GENERIC_FIELDS)
    unconditional_update: bool = True  # PUT without metadata.resourceVersion allowed
    create_on_update: bool = False  # PUT of a missing object creates it
    returns_deleted: bool = False  # DELETE answers with the object instead of a Status

    @property
    def key(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


PODS = ResourceType("pods", "Pod", fields=frozenset(POD_FIELDS), returns_deleted=True)
EVENTS = ResourceType("events", "Event", fields=frozenset(EVENT_FIELDS))
SECRETS = ResourceType("secrets", "Secret", fields=frozenset(GENERIC_FIELDS | {"type"}))
CONFIGMAPS = ResourceType("configmaps", "ConfigMap")
LEASES = ResourceType("leases", "Lease", group="coordination.k8s.io", unconditional_update=False)
NAMESPACES = ResourceType("namespaces", "Namespace", namespaced=False,
                          fields=frozenset({"metadata.name", "status.phase"}))
NODES = ResourceType("nodes", "Node", namespaced=False,
                     fields=frozenset({"metadata.name", "spec.unschedulable"}))
ALL_TYPES = (PODS, EVENTS, SECRETS, CONFIGMAPS, LEASES, NAMESPACES, NODES)
BY_PATH = {(t.group, t.plural): t for t in ALL_TYPES}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    body: Any = None
    user: str = ""
    groups: list[str] = field(default_factory=list)
    # filled by the router
    resource: ResourceType | None = None
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    verb: str = ""
    warnings: list[str] = field(default_factory=list)  # Warning response headers

    def flag(self, name: str) -> bool:
        """Boolean query parameter, parsed like Go's strconv.ParseBool."""
        return self.query.get(name, "") in ("1", "t", "T", "TRUE", "true", "True")

    def int_param(self, name: str) -> int | None:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return None
        from .errors import bad_request

        try:
            return int(raw)
        except ValueError:
            raise bad_request(
                f'strconv.ParseInt: parsing "{raw}": invalid syntax'
            ) from None


@dataclass
class Response:
    status: int
    body: Any
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class StreamWriter:
    """What a streaming handler writes to (implemented by the HTTP layer)."""

    def write(self, data: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def closed(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Stream:
    status: int
    content_type: str
    produce: Callable[[StreamWriter], str | None]  # returns an abort mode or None (clean end)
    kind: str = "watch"  # watch | log
    headers: dict[str, str] = field(default_factory=dict)
