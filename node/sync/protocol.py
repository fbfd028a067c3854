"""The sync protocol's messages: paths, limits and strict parsing of every JSON body.

Both sides use these functions, so a request the server accepts and a
response the client accepts follow the same rules (docs/replication.md).
Anything malformed raises :class:`ProtocolError` naming the member and what
was wrong; nothing is coerced.
"""

from __future__ import annotations

import json
import re
from typing import Any

from node.errors import NodeError
from node.frozen import frozen

PREFIX = "/sync/v1"
#: Largest JSON response a client reads (one page of entries fits in it).
MAX_PAGE_BYTES = 1024 * 1024
#: Largest digest, notify or status response/request a client or server reads.
MAX_SMALL_BYTES = 4096
#: Largest registry snapshot passed on.
MAX_REGISTRY_BYTES = 1024 * 1024
#: Most authors a vector may name (a community is tens to hundreds of nodes).
MAX_AUTHORS = 10_000
MAX_SEQ = 2**53 - 1
#: Most entry ids one ``POST /sync/v1/bodies`` may ask for.
MAX_BODY_IDS = 100
#: Most entries one ``POST /sync/v1/push`` may carry, and its largest body: what a node
#: pushes is what just changed (a post, an edit), not a backlog (that is pulled).
MAX_PUSH_ENTRIES = 16
MAX_PUSH_BYTES = 64 * 1024
JSON_TYPE = "application/json"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"[0-9a-f]{16}")
_FINGERPRINT = re.compile(r"[A-Z2-7]{4}(?:-[A-Z2-7]{4}){0,15}")


class ProtocolError(NodeError, ValueError):
    """A sync message is malformed: not JSON, a wrong member, a value out of range."""


class PushRefused(ProtocolError):
    """A pushed entry was refused by the store (``POST /sync/v1/push`` answers 400)."""


@frozen
class Digest:
    """A node's summary: its log digest, who it is, how many entries, its registry serial."""

    digest: str
    node: str
    count: int
    registry: int | None

    def to_json(self) -> dict[str, Any]:
        """The ``GET /sync/v1/digest`` response body."""
        return {"digest": self.digest, "node": self.node, "count": self.count,
                "registry": self.registry}


@frozen
class Push:
    """A ``POST /sync/v1/push``: a notification that carries the new entries themselves."""

    digest: str
    port: int | None
    registry: int | None
    entries: list[dict[str, Any]]


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as every sync body is sent."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ProtocolError(f"member {key[:40]!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not allowed in JSON")


def loads(data: bytes, what: str) -> Any:
    """Parse a JSON body strictly: UTF-8, no duplicate members, no NaN/Infinity."""
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                          parse_constant=_no_constant)
    except ProtocolError as exc:
        raise ProtocolError(f"{what}: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what}: not valid JSON ({str(exc)[:120]})") from None


def _object(value: Any, what: str, required: set[str],
            optional: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what}: expected a JSON object")
    missing = required - value.keys()
    if missing:
        raise ProtocolError(f"{what}: missing member {sorted(missing)[0]!r}")
    extra = value.keys() - required - optional
    if extra:
        raise ProtocolError(f"{what}: unknown member {sorted(extra)[0][:40]!r}")
    return value


def _digest(value: object, what: str) -> str:
    """``value`` as a log digest (16 lower-case hex digits), else a :class:`ProtocolError`."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise ProtocolError(f"{what}: digest must be 16 lower-case hex digits")
    return value


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{what}: expected an integer from {low} to {high}, "
                            f"found {str(value)[:40]!r}")
    return value


def parse_vector(value: Any, what: str = "vector") -> dict[str, int]:
    """A vector: at most :data:`MAX_AUTHORS` author keys (64 hex) -> seq (1 ... 2^53-1)."""
    if not isinstance(value, dict):
        raise ProtocolError(f"{what}: expected an object mapping author keys to sequence "
                            "numbers")
    if len(value) > MAX_AUTHORS:
        raise ProtocolError(f"{what}: more than {MAX_AUTHORS} authors")
    for key, seq in value.items():
        if not _HEX64.fullmatch(key):
            raise ProtocolError(f"{what}: {key[:70]!r} is not an author key (64 lower-case "
                                "hex digits)")
        _int(seq, f"{what}.{key[:8]}…", 1, MAX_SEQ)
    return dict(value)


def parse_port(value: Any, what: str = "port") -> int | None:
    """The optional agent port a requester gives so that the receiver can pull back."""
    return None if value is None else _int(value, what, 1, 65535)


def parse_digest(value: Any) -> Digest:
    """The ``GET /sync/v1/digest`` response."""
    obj = _object(value, "digest response", {"digest", "node", "count", "registry"})
    digest = _digest(obj["digest"], "digest response")
    if not isinstance(obj["node"], str) or not _FINGERPRINT.fullmatch(obj["node"]):
        raise ProtocolError("digest response: node must be a key fingerprint")
    registry = obj["registry"]
    return Digest(digest, obj["node"], _int(obj["count"], "count", 0, MAX_SEQ),
                  None if registry is None else _int(registry, "registry", 1, MAX_SEQ))


def parse_vector_request(value: Any) -> tuple[dict[str, int], int | None]:
    """``POST /sync/v1/vector`` body: ``{"vector": {...}, "port": int|null}``."""
    obj = _object(value, "vector request", {"vector"}, {"port"})
    return parse_vector(obj["vector"]), parse_port(obj.get("port"))


def parse_vector_response(value: Any) -> dict[str, int]:
    """``POST /sync/v1/vector`` response: ``{"vector": {...}}``."""
    return parse_vector(_object(value, "vector response", {"vector"})["vector"])


def parse_entries_request(value: Any, max_limit: int) -> tuple[dict[str, int], int]:
    """``POST /sync/v1/entries`` body: ``{"since": vector, "limit": 1..max_limit}``."""
    obj = _object(value, "entries request", {"since", "limit"})
    return parse_vector(obj["since"], "since"), _int(obj["limit"], "limit", 1, max_limit)


def parse_entries_response(value: Any, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """``POST /sync/v1/entries`` response: ``{"entries": [...], "more": bool}``.

    Each entry must be an object; the store checks everything else about it.
    """
    obj = _object(value, "entries response", {"entries", "more"})
    entries, more = obj["entries"], obj["more"]
    if not isinstance(entries, list) or len(entries) > limit:
        raise ProtocolError(f"entries response: entries must be a list of at most {limit}")
    if not all(isinstance(e, dict) for e in entries):
        raise ProtocolError("entries response: every entry must be an object")
    if not isinstance(more, bool):
        raise ProtocolError("entries response: more must be true or false")
    return entries, more


def parse_bodies_request(value: Any) -> list[str]:
    """``POST /sync/v1/bodies`` body: ``{"ids": [<entry id>, ...]}``, 1 to MAX_BODY_IDS ids."""
    ids = _object(value, "bodies request", {"ids"})["ids"]
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BODY_IDS:
        raise ProtocolError(f"bodies request: ids must be a list of 1 to {MAX_BODY_IDS} "
                            "entry ids")
    for item in ids:
        if not isinstance(item, str) or not _HEX64.fullmatch(item):
            raise ProtocolError(f"bodies request: {str(item)[:70]!r} is not an entry id (64 "
                                "lower-case hex digits)")
    if len(set(ids)) != len(ids):
        raise ProtocolError("bodies request: an id appears twice")
    return list(ids)


def parse_bodies_response(value: Any, asked: int) -> list[dict[str, Any]]:
    """``POST /sync/v1/bodies`` response: ``{"entries": [...]}``, at most as many as asked.

    The caller checks that each is one it asked for and has a body; the store
    checks the rest.
    """
    entries = _object(value, "bodies response", {"entries"})["entries"]
    if not isinstance(entries, list) or len(entries) > asked:
        raise ProtocolError(f"bodies response: entries must be a list of at most {asked}")
    if not all(isinstance(e, dict) for e in entries):
        raise ProtocolError("bodies response: every entry must be an object")
    return entries


def parse_notify(value: Any) -> tuple[str, int | None]:
    """``POST /sync/v1/notify`` body: ``{"digest": "<16 hex>", "port": int|null}``."""
    obj = _object(value, "notify request", {"digest"}, {"port"})
    digest = _digest(obj["digest"], "notify request")
    return digest, parse_port(obj.get("port"))


def parse_push(value: Any) -> Push:
    """``POST /sync/v1/push`` body: ``{"digest": "<16 hex>", "port": int|null,
    "registry": int|null, "entries": [<wire entry>, ...]}``, 1 to :data:`MAX_PUSH_ENTRIES`
    entries (each an object: the store checks everything else about it)."""
    obj = _object(value, "push request", {"digest", "registry", "entries"}, {"port"})
    digest = _digest(obj["digest"], "push request")
    registry = obj["registry"]
    entries = obj["entries"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_PUSH_ENTRIES:
        raise ProtocolError(f"push request: entries must be a list of 1 to {MAX_PUSH_ENTRIES}")
    if not all(isinstance(e, dict) for e in entries):
        raise ProtocolError("push request: every entry must be an object")
    return Push(digest, parse_port(obj.get("port")),
                None if registry is None else _int(registry, "push request: registry", 1,
                                                   MAX_SEQ),
                entries)
