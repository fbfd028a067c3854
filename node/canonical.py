"""Canonical JSON: the one encoding of every signed thing.

Entry headers and bodies (docs/entry-format.md), registry snapshots
(docs/registry.md) and release manifests (docs/updates.md) are signed over
these bytes, so two implementations that follow the rules below sign and
verify the same bytes.

JSON, UTF-8, keys sorted by code point, separators ``,`` and ``:``, no
insignificant whitespace, non-ASCII written as itself. Only objects with
string keys, arrays, strings, integers (within +-(2**53 - 1), so that every
JSON implementation reads them exactly), booleans and null are allowed;
floats are refused because their text form differs between implementations.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any

#: Largest integer magnitude an entry may hold (exact in IEEE doubles, hence in JavaScript).
MAX_INT = 2**53 - 1


class EncodingError(ValueError):
    """A value cannot be canonically encoded; ``path`` says where (e.g. ``body.price``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{message} at {path}")


def check_value(value: Any, path: str = "$") -> None:
    """Raise :class:`EncodingError` unless ``value`` uses only the allowed JSON types."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise EncodingError(path, "integer out of range")
        return
    if isinstance(value, float):
        raise EncodingError(path, "float")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(path, "non-string key")
            check_value(item, f"{path}.{key}")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_value(item, f"{path}[{index}]")
        return
    raise EncodingError(path, f"unsupported type {type(value).__name__}")


def canonical(value: Any, path: str = "$") -> bytes:
    """The canonical bytes of ``value`` (checked first; see the module docstring)."""
    check_value(value, path)
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


def nfc(value: Any) -> Any:
    """``value`` with every string (keys too) in Unicode normal form C.

    Creators normalise before signing so that the same text typed on two
    devices encodes to the same bytes; receivers never renormalise.
    """
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {nfc(k): nfc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nfc(v) for v in value]
    return value
