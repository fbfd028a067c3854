"""Health documents from other nodes: fetched with a size cap and checked before use.

Another node's agent may be old, broken or hostile: a document that is too
large, not JSON, or of the wrong shape is refused with a reason (the caller
logs it once), never trusted field by field.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

from node.health.collector import SCHEMA_VERSION

#: Largest health document accepted from another node.
MAX_DOCUMENT_BYTES = 1024 * 1024
DEFAULT_AGENT_PORT = 9180

_TARGET = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))"
                     r"(?::(?P<port>\d{1,5}))?$")


class DocumentError(ValueError):
    """A node's health document could not be fetched or is not acceptable."""


def normalise_target(text: str, default_port: int = DEFAULT_AGENT_PORT) -> str:
    """``host`` or ``host:port`` -> ``host:port``; raise ValueError for anything else."""
    match = _TARGET.match(text.strip())
    port = int(match.group("port") or default_port) if match else 0
    if not match or not 1 <= port <= 65535:
        raise ValueError(f"{text!r} is not a host or host:port (e.g. 10.42.0.7 or "
                         f"node-7.mesh:{DEFAULT_AGENT_PORT})")
    return f"{match.group('host')}:{port}"


def check_document(doc: Any) -> list[str]:
    """What is wrong with ``doc`` as a health document (empty when it is acceptable)."""
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    problems = []
    if doc.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version is {doc.get('schema_version')!r}, "
                        f"this node reads {SCHEMA_VERSION}")
    node = doc.get("node")
    if not isinstance(node, dict) or not isinstance(node.get("name"), str):
        problems.append("node.name missing")
    if not isinstance(doc.get("time"), int | float):
        problems.append("time missing")
    for section in ("cpu", "memory", "disk", "soc", "network", "clients"):
        if not isinstance(doc.get(section), dict):
            problems.append(f"{section} is not an object")
    if not isinstance(doc.get("alerts", []), list):
        problems.append("alerts is not a list")
    return problems


def fetch_document(target: str, timeout: float = 3.0,
                   max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """GET ``http://TARGET/api/health``; raise :class:`DocumentError` saying why it failed."""
    url = f"http://{target}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise DocumentError(f"{target}: unreachable ({getattr(exc, 'reason', exc)})") from None
    if len(body) > max_bytes:
        raise DocumentError(f"{target}: health document larger than {max_bytes} bytes")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise DocumentError(f"{target}: not JSON ({exc})") from None
    if problems := check_document(doc):
        raise DocumentError(f"{target}: malformed health document: {'; '.join(problems)}")
    return doc
