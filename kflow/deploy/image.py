"""The runner's ``--image``: checked as a container image reference before anything is
uploaded, so a typo is exit 2 here rather than an ``InvalidImageName`` pod every tick.

The grammar is the one the kubelet's runtimes parse (distribution/reference):
``[HOST[:PORT]/]PATH[:TAG][@ALGO:HEX]``, the path lower-case.
"""

from __future__ import annotations

import re

from kflow.errors import UsageError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = (
    r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])"
)
_NAME = rf"(?:{_HOST}(?::(?P<port>[0-9]+))?/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")
NAME_MAX = 255  # characters in the name part (distribution/reference)
PORT_MAX = 65535  # the grammar takes any digits; no registry listens beyond


def check_image(image: str) -> str:
    """``image`` if it is a valid image reference, else a UsageError naming ``--image``."""
    found = _REFERENCE.fullmatch(image)
    port = found["port"] if found is not None else None
    if found is not None and len(found["name"]) <= NAME_MAX and _port_ok(port):
        return image
    raise UsageError(
        f"--image {image!r}: not an image reference ({_why(image, found)})",
        hint="[REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST], e.g. ghcr.io/example/kflow:1",
    )


def _port_ok(port: str | None) -> bool:
    return port is None or 1 <= int(port) <= PORT_MAX


def _why(image: str, found: re.Match[str] | None) -> str:
    if found is not None and not _port_ok(found["port"]):
        return f"registry port {found['port']} is out of range 1-{PORT_MAX}"
    if found is not None:
        return f"the name is over {NAME_MAX} characters"
    if any(c.isspace() for c in image):
        return "it contains a space"
    if image.endswith(":") or ":@" in image:
        return "empty tag"
    if image.endswith("@"):
        return "empty digest"
    if _REFERENCE.fullmatch(image.lower()):
        return "the repository must be lower-case"
    return "expected [REGISTRY/]REPOSITORY[:TAG]"
