"""Health documents from other nodes: fetched with a size cap and checked before use.

Another node's agent may be old, broken or hostile: a document that is too
large, not JSON, or of the wrong shape is refused with a reason (the caller
logs it once), never trusted field by field.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
from typing import Any

from node.health.collector import SCHEMA_VERSION

#: Largest health document accepted from another node.
MAX_DOCUMENT_BYTES = 1024 * 1024
DEFAULT_AGENT_PORT = 9180
#: At most this many agents are taken from one document's mesh part.
MAX_MESH_TARGETS = 256

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
    problems.extend(_mesh_problems(doc.get("mesh")))
    return problems


def _mesh_problems(mesh: Any) -> list[str]:
    """What is wrong with a document's ``mesh`` part (``null`` is fine: no mesh data)."""
    if mesh is None:
        return []
    if not isinstance(mesh, dict):
        return ["mesh is neither null nor an object"]
    problems = []
    neighbours = mesh.get("neighbours")
    if not isinstance(neighbours, list) or not all(
            isinstance(n, dict) and isinstance(n.get("address"), str) for n in neighbours):
        problems.append("mesh.neighbours is not a list of neighbours with an address")
    routes = mesh.get("routes")
    if isinstance(routes, bool) or not isinstance(routes, int):
        problems.append("mesh.routes is not a number")
    for key in ("nodes", "peers"):
        if not isinstance(mesh.get(key, []), list) or not all(
                isinstance(a, str) for a in mesh.get(key, [])):
            problems.append(f"mesh.{key} is not a list of strings")
    return problems


def mesh_targets(doc: dict[str, Any] | None, agent_port: int = DEFAULT_AGENT_PORT,
                 limit: int = MAX_MESH_TARGETS) -> list[str]:
    """``host:port`` of every agent a node's document names in its mesh part.

    The neighbours' agents as zeroconf found them (``mesh.peers``, with the port
    they announce) and every node babeld routes to (``mesh.nodes``, at
    ``agent_port``: the community's agents share one port unless they announce
    another).  Malformed entries are skipped; at most ``limit`` are returned.
    """
    mesh = (doc or {}).get("mesh")
    if not isinstance(mesh, dict):
        return []
    found: dict[str, str] = {}  # host -> host:port, first one wins
    candidates = [p.removeprefix("http://").rstrip("/") for p in mesh.get("peers") or []
                  if isinstance(p, str) and p.startswith("http://")]
    candidates += [a for a in mesh.get("nodes") or [] if isinstance(a, str)]
    for text in candidates:
        try:
            target = normalise_target(text, agent_port)
        except ValueError:
            continue
        found.setdefault(target.rpartition(":")[0], target)
        if len(found) >= limit:
            break
    return list(found.values())


def fetch_json(target: str, path: str, *, what: str, timeout: float, max_bytes: int,
               http_hint: str | None = None) -> Any:
    """GET ``http://TARGET/PATH`` and parse it as JSON; raise :class:`DocumentError` saying why not.

    ``timeout`` bounds connecting and each read; the body must also arrive
    within ``4 × timeout`` in all, so a node that trickles bytes cannot hold
    the caller for long. At most ``max_bytes`` are accepted. ``what`` names
    the document in messages; with ``http_hint`` an HTTP error status is
    reported as such (with the hint) instead of as "unreachable".
    """
    url = f"http://{target}{path}"
    deadline = time.monotonic() + 4 * timeout
    try:
        from urllib.request import urlopen  # here: heavy, and an idle agent needs none

        with urlopen(url, timeout=timeout) as response:
            body = bytearray()
            while len(body) <= max_bytes:
                chunk = response.read1(65536)
                if not chunk:
                    break
                body.extend(chunk)
                if time.monotonic() > deadline:
                    raise DocumentError(f"{target}: too slow (no complete {what} within "
                                        f"{4 * timeout:g} s)")
    except urllib.error.HTTPError as exc:
        if http_hint is None:
            raise DocumentError(f"{target}: unreachable ({exc.reason})") from None
        raise DocumentError(f"{target}: the agent answered HTTP {exc.code} ({http_hint})"
                            ) from None
    except http.client.HTTPException as exc:  # a garbled status line or headers
        raise DocumentError(f"{target}: not an HTTP answer ({type(exc).__name__})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DocumentError(f"{target}: unreachable ({getattr(exc, 'reason', exc)})") from None
    if len(body) > max_bytes:
        raise DocumentError(f"{target}: {what} larger than {max_bytes} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise DocumentError(f"{target}: {what} is not JSON ({exc})") from None


def fetch_document(target: str, timeout: float = 3.0,
                   max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """GET ``http://TARGET/api/health`` (see :func:`fetch_json`) and check it.

    Raises :class:`DocumentError` saying why it failed or why the document is
    not acceptable.
    """
    doc = fetch_json(target, "/api/health", what="health document", timeout=timeout,
                     max_bytes=max_bytes)
    if problems := check_document(doc):
        raise DocumentError(f"{target}: malformed health document: {'; '.join(problems)}")
    return doc
