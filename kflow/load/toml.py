"""Reading ``kflow.toml`` into a Document."""

from __future__ import annotations

import sys
from pathlib import Path

from kflow.errors import DefinitionError, Location
from kflow.load.document import Document, Source

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def read_toml(path: Path, display: str) -> Document:
    """Parse a TOML definition file; syntax errors name the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"cannot read: {exc.strerror}", Location(display)) from None
    except UnicodeDecodeError:
        raise DefinitionError("not UTF-8 text", Location(display)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        message = str(exc)
        if line is None and "(at line " in message:
            line = int(message.rsplit("(at line ", 1)[1].split(",")[0])
        message = message.split(" (at line")[0]
        raise DefinitionError(f"malformed TOML: {message}", Location(display, line=line)) from None
    return Document(data, {"": Source(path, display, text=text)})
