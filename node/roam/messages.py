"""The roaming announcement: its exact bytes, its signature, and every check made on it.

One announcement is a JSON object (UTF-8, at most :data:`MAX_MESSAGE_BYTES`)::

    {"v": 1, "origin": "<sender's Ed25519 public key, 64 hex>", "id": "<32 hex, random>",
     "sent": <unix seconds>, "flood": true, "forget": false,
     "accepted": [{"day": <UTC day number>, "tag": "<32 hex>", "until": <unix seconds>}],
     "sig": "<128 hex>"}

``sig`` is the sender's Ed25519 signature of ``b"meshhub-roam-v1\\n"`` followed by the
object *without* ``sig`` serialised with sorted keys and no spaces
(``json.dumps(..., sort_keys=True, separators=(",", ":"))``). ``forget: true`` (always
flooded) tells every node to drop every entry it knows: a node switched to ``forced``
revokes the mesh's acceptances. A receiver refuses the
whole announcement, and counts the reason, when it is oversized, not that shape
(``malformed``), from a key that is not a registered node (``unregistered``), badly
signed (``bad-signature``), sent more than :data:`MAX_AGE_SECONDS` ago or more than
:data:`MAX_AHEAD_SECONDS` ahead (``stale``), or an ``id`` it has already seen
(``replayed``). Entries whose ``until`` has passed are ignored; none may lie further
ahead than :data:`MAX_ACCEPT_SECONDS`.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from node.frozen import frozen
from node.identity import Identity, verify_signature

VERSION = 1
DOMAIN = b"meshhub-roam-v1\n"
#: Largest announcement accepted, in bytes, and most entries in one.
MAX_MESSAGE_BYTES = 16_384
MAX_ENTRIES = 128
#: How old (or how far ahead of this node's clock) an announcement may be.
MAX_AGE_SECONDS = 120
MAX_AHEAD_SECONDS = 30
#: The longest acceptance (gate.allow_minutes' maximum, 30 days) and a day of slack.
MAX_ACCEPT_SECONDS = 31 * 86_400

#: Every reason an announcement is refused for, each a counter of its own
#: (``refused_<reason>`` in :meth:`node.roam.RoamService.status`, ``reason`` on ``/metrics``).
REFUSAL_REASONS = ("oversized", "malformed", "unregistered", "bad-signature", "stale",
                   "replayed")

_HEX = {n: re.compile(f"[0-9a-f]{{{n}}}") for n in (32, 64, 128)}
_KEYS = {"v", "origin", "id", "sent", "flood", "forget", "accepted", "sig"}


class Refused(ValueError):
    """An announcement was refused; ``reason`` is the counter it adds to."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@frozen
class Entry:
    """One acceptance: a device's tag under the key of ``day``, valid until ``until``."""

    day: int
    tag: str
    until: int


@frozen
class Announcement:
    """A checked announcement."""

    origin: str
    id: str
    sent: int
    flood: bool
    forget: bool
    entries: tuple[Entry, ...]
    raw: bytes  #: the bytes as received, forwarded unchanged when ``flood``


def _signed_bytes(body: dict[str, Any]) -> bytes:
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def build(identity: Identity, entries: list[Entry], now: float, *, flood: bool,
          forget: bool = False) -> bytes:
    """The signed bytes of an announcement of ``entries`` by this node (``forget``: drop
    everything known first)."""
    body: dict[str, Any] = {
        "v": VERSION, "origin": identity.public_key, "id": secrets.token_hex(16),
        "sent": int(now), "flood": bool(flood or forget), "forget": bool(forget),
        "accepted": [{"day": e.day, "tag": e.tag, "until": e.until} for e in entries],
    }
    body["sig"] = identity.sign(_signed_bytes(body))
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse(raw: bytes, now: float, is_registered: Any) -> Announcement:
    """Check ``raw`` completely (see the module docstring); :class:`Refused` if not good.

    ``is_registered(public_key_hex)`` tells whether a key belongs to a registered node.
    Replays are checked by the caller, which remembers the ids.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Refused("oversized", f"announcement of {len(raw)} bytes (at most "
                      f"{MAX_MESSAGE_BYTES})")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused("malformed", "not UTF-8 JSON") from None
    if not isinstance(body, dict) or set(body) != _KEYS or body.get("v") != VERSION:
        raise Refused("malformed", f"expected exactly the keys {sorted(_KEYS)} and v=1")
    origin, ident, sig = body["origin"], body["id"], body["sig"]
    if not all(isinstance(v, str) for v in (origin, ident, sig)) \
            or not _HEX[64].fullmatch(origin) or not _HEX[32].fullmatch(ident) \
            or not _HEX[128].fullmatch(sig) or not _is_int(body["sent"]) \
            or not isinstance(body["flood"], bool) or not isinstance(body["forget"], bool) \
            or not isinstance(body["accepted"], list) \
            or len(body["accepted"]) > MAX_ENTRIES:
        raise Refused("malformed", "origin, id, sig, sent, flood or accepted has the wrong form")
    entries = []
    for item in body["accepted"]:
        if not isinstance(item, dict) or set(item) != {"day", "tag", "until"} \
                or not _is_int(item["day"]) or not _is_int(item["until"]) \
                or not isinstance(item["tag"], str) or not _HEX[32].fullmatch(item["tag"]):
            raise Refused("malformed", "an entry is not {day, tag, until}")
        if item["until"] > now + MAX_ACCEPT_SECONDS:
            raise Refused("malformed", "an entry lasts longer than any acceptance can")
        entries.append(Entry(item["day"], item["tag"], item["until"]))
    if not is_registered(origin):
        raise Refused("unregistered", "the sender is not a registered node")
    unsigned = {k: v for k, v in body.items() if k != "sig"}
    if not verify_signature(origin, _signed_bytes(unsigned), sig):
        raise Refused("bad-signature", "the signature does not match")
    if not now - MAX_AGE_SECONDS <= body["sent"] <= now + MAX_AHEAD_SECONDS:
        raise Refused("stale", f"sent at {body['sent']}, this node's clock says {int(now)}")
    return Announcement(origin, ident, body["sent"], body["flood"], body["forget"],
                        tuple(entries), raw)
