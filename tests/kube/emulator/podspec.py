"""Pod creation defaults and server-side validation (§3.6 of the research note)."""

from __future__ import annotations

import random
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import FieldError, bad_request
from .selectors import validate_label_key, validate_label_value

NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIX: dict[str, Decimal | int] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)"  # noqa: E501
IMAGE_REF = re.compile(
    rf"^{_IMAGE_DOMAIN}?{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
]  # fmt: skip


def parse_quantity(value: Any) -> Decimal:
    """Parse a resource quantity ("100m", "64Mi", "1e3", 2) to a Decimal of base units."""
    text = str(value).strip()
    m = QUANTITY.match(text)
    if not m:
        raise ValueError(text)
    number, suffix = m.group(1), m.group(2)
    try:
        base = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(text) from exc
    if suffix in _SUFFIX:
        return base * Decimal(_SUFFIX[suffix])
    if suffix[:1] in ("e", "E"):
        return base * (Decimal(10) ** int(suffix[1:]))
    raise ValueError(text)


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(NAME_CHARS) for _ in range(n))


def image_is_valid(image: str) -> bool:
    return bool(IMAGE_REF.match(image))


def _image_pull_policy(image: str) -> str:
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _all_containers(spec: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for field in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field) or []):
            if isinstance(c, dict):
                out.append((field, i, c))
    return out


def qos_class(spec: dict[str, Any]) -> str:
    requests_any = False
    guaranteed = True
    for _, _, c in _all_containers(spec):
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and _q(req[r]) != _q(lim[r])):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _q(value: Any) -> Decimal:
    try:
        return parse_quantity(value)
    except ValueError:
        return Decimal(-1)


def apply_defaults(pod: dict[str, Any], namespace: str, now_iso: str) -> dict[str, Any]:
    meta = pod.setdefault("metadata", {})
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    meta["namespace"] = namespace
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + random_suffix()
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_iso
    meta["generation"] = 1
    for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
        meta.pop(k, None)
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = sa
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for tol in DEFAULT_TOLERATIONS:
        if not any(t.get("key") == tol["key"] for t in tolerations if isinstance(t, dict)):
            tolerations.append(dict(tol))
    automount = spec.get("automountServiceAccountToken", True) is not False
    volume_name = f"kube-api-access-{random_suffix()}"
    if automount:
        spec.setdefault("volumes", []).append({
            "name": volume_name,
            "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]},
        })  # fmt: skip
    for _, _, c in _all_containers(spec):
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        if isinstance(c.get("image"), str):
            c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
        res = c.setdefault("resources", {})
        lim = res.get("limits") or {}
        if lim:
            req = res.setdefault("requests", {})
            for k, v in lim.items():
                req.setdefault(k, v)
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("fieldRef")
            if isinstance(ref, dict):
                ref.setdefault("apiVersion", "v1")
        for port in c.get("ports") or []:
            port.setdefault("protocol", "TCP")
        if automount:
            c.setdefault("volumeMounts", []).append({
                "name": volume_name, "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            })  # fmt: skip
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
    return pod


def validate_metadata(meta: dict[str, Any], name_required: bool = True) -> list[FieldError]:
    errs: list[FieldError] = []
    name = meta.get("name")
    if not name:
        if name_required and not meta.get("generateName"):
            errs.append(FieldError("Required", "metadata.name", None,
                                   "name or generateName is required"))
    elif not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        detail = "must be no more than 253 characters" if isinstance(name, str) and len(
            name) > 253 else SUBDOMAIN_MSG
        errs.append(FieldError("Invalid", "metadata.name", name, detail))
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if not isinstance(values, dict):
            continue
        total = 0
        for key, value in values.items():
            key_detail = validate_label_key(key)
            if key_detail:
                errs.append(FieldError("Invalid", f"metadata.{field}", key, key_detail))
            if field == "labels":
                vdetail = validate_label_value(str(value))
                if vdetail:
                    errs.append(FieldError("Invalid", "metadata.labels", value, vdetail))
            total += len(key) + len(str(value))
        if field == "annotations" and total > 256 * 1024:
            errs.append(FieldError("TooLong", "metadata.annotations", None,
                                   "may not be more than 262144 bytes"))
    return errs


def check_quantities(pod: dict[str, Any]) -> None:
    """Malformed quantities fail at decoding time: 400, not 422."""
    for _, _, c in _all_containers(pod.get("spec") or {}):
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for _, v in (res.get(kind) or {}).items():
                try:
                    parse_quantity(v)
                except ValueError:
                    raise bad_request(
                        "quantities must match the regular expression "
                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                    ) from None


def validate_pod(pod: dict[str, Any]) -> list[FieldError]:
    errs = validate_metadata(pod.get("metadata") or {})
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy")
    if policy not in ("Always", "OnFailure", "Never"):
        errs.append(FieldError("NotSupported", "spec.restartPolicy", policy,
                               'supported values: "Always", "OnFailure", "Never"'))
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or ads < 1 or ads > 2147483647):
        errs.append(FieldError("Invalid", "spec.activeDeadlineSeconds", ads,
                               "must be between 1 and 2147483647, inclusive"))
    tgps = spec.get("terminationGracePeriodSeconds")
    if tgps is not None and (not isinstance(tgps, int) or tgps < 0):
        errs.append(FieldError("Invalid", "spec.terminationGracePeriodSeconds", tgps,
                               "must be greater than or equal to 0"))
    if not spec.get("containers"):
        errs.append(FieldError("Required", "spec.containers", None, ""))
    seen: set[str] = set()
    for field, i, c in _all_containers(spec):
        path = f"spec.{field}[{i}]"
        name = c.get("name")
        if not name:
            errs.append(FieldError("Required", f"{path}.name", None, ""))
        elif not isinstance(name, str) or len(name) > 63 or not DNS_LABEL.match(name):
            errs.append(FieldError("Invalid", f"{path}.name", name, LABEL_MSG))
        elif name in seen:
            errs.append(FieldError("Duplicate", f"{path}.name", name))
        else:
            seen.add(name)
        image = c.get("image")
        if not image:
            errs.append(FieldError("Required", f"{path}.image", None, ""))
        elif image != image.strip():
            errs.append(FieldError("Invalid", f"{path}.image", image,
                                   "must not have leading or trailing whitespace"))
        policy = c.get("terminationMessagePolicy")
        if policy not in ("File", "FallbackToLogsOnError"):
            errs.append(FieldError("NotSupported", f"{path}.terminationMessagePolicy", policy,
                                   'supported values: "File", "FallbackToLogsOnError"'))
        pull = c.get("imagePullPolicy")
        if pull not in ("Always", "IfNotPresent", "Never"):
            errs.append(FieldError("NotSupported", f"{path}.imagePullPolicy", pull,
                                   'supported values: "Always", "IfNotPresent", "Never"'))
        for j, env in enumerate(c.get("env") or []):
            ename = env.get("name") if isinstance(env, dict) else None
            if not ename:
                errs.append(FieldError("Required", f"{path}.env[{j}].name", None, ""))
            elif not ENV_NAME.match(ename):
                errs.append(FieldError(
                    "Invalid", f"{path}.env[{j}].name", ename,
                    "a valid environment variable name must consist of alphabetic characters, "
                    "digits, '_', '-', or '.', and must not start with a digit (e.g. "
                    "'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for "
                    "validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"))
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for r, v in req.items():
            if r in lim and _q(v) > _q(lim[r]):
                errs.append(FieldError("Invalid", f"{path}.resources.requests", v,
                                       f"must be less than or equal to {r} limit of {lim[r]}"))
    return errs


MUTABLE_SPEC_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def spec_update_allowed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Only images, activeDeadlineSeconds and tolerations may change on a pod update."""
    def strip(spec: dict[str, Any]) -> dict[str, Any]:
        s = {k: v for k, v in spec.items()
             if k not in ("activeDeadlineSeconds", "tolerations")}
        for field in ("containers", "initContainers"):
            if isinstance(s.get(field), list):
                s[field] = [{k: v for k, v in c.items() if k != "image"} for c in s[field]]
        return s
    return strip(old) == strip(new)
