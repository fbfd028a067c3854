"""Signed entries: building them, and checking one that came from elsewhere.

An entry is a header (who, which sequence number, when, which organiser,
what kind, which target, the body's hash) signed with the author node's
Ed25519 key, plus the body, which may later be erased (``null``) without
breaking the signature. The format is specified in docs/entry-format.md.
"""

from __future__ import annotations

import json
import re
from typing import Any

from node.canonical import EncodingError, canonical, sha256_hex
from node.errors import EntryRejected
from node.frozen import frozen
from node.identity import Identity, verify_signature
from node.store.kinds import ACCOUNT_NAME, HEX64, KINDS, Kind, body_problems, header_problems

FORMAT_VERSION = 1
SIGNING_PREFIX = b"meshhub-entry-v1\n"
HEADER_FIELDS = ("v", "author", "seq", "ts", "actor", "kind", "target", "body_hash")
SIG = re.compile(r"[0-9a-f]{128}")


@frozen
class Entry:
    """One verified (or freshly signed) entry."""

    id: str
    header: dict[str, Any]
    sig: str
    body: dict[str, Any] | None  #: None once erased

    @property
    def author(self) -> str:
        """The signing node's public key."""
        return str(self.header["author"])

    @property
    def seq(self) -> int:
        """Position in the author's log, from 1."""
        return int(self.header["seq"])

    @property
    def ts(self) -> int:
        """Creation time, Unix milliseconds."""
        return int(self.header["ts"])

    @property
    def kind(self) -> str:
        """The entry kind, e.g. ``listing.post``."""
        return str(self.header["kind"])

    @property
    def actor(self) -> str | None:
        """The organiser account that acted, if any."""
        actor = self.header["actor"]
        return None if actor is None else str(actor)

    @property
    def target(self) -> str | None:
        """The id of the entry (item) this one refers to, if any."""
        target = self.header["target"]
        return None if target is None else str(target)

    @property
    def subject(self) -> str:
        """The key of the view row this entry contributes to (see docs/store.md)."""
        return subject_of(self.header, self.id, self.body)

    def wire(self) -> dict[str, Any]:
        """The form sent between nodes (``id`` is informative; receivers recompute it)."""
        return {"id": self.id, "header": dict(self.header), "sig": self.sig,
                "body": None if self.body is None else dict(self.body)}


def subject_of(header: dict[str, Any], entry_id: str, body: dict[str, Any] | None) -> str:
    """The view row an entry belongs to.

    Creating entries are their own subject; edits, deletes and decisions use
    their target; account entries use ``account:NAME`` (NAME from the body,
    or the target-less header of an erased entry, which then affects nothing).
    """
    kind = str(header["kind"])
    if kind.startswith("account."):
        name = body.get("name") if body else None
        return f"account:{name}" if name else f"erased:{entry_id}"
    return str(header["target"] or entry_id)


def entry_id(header: dict[str, Any]) -> str:
    """The id of the entry with this header: SHA-256 of its canonical encoding."""
    return sha256_hex(canonical(header, "header"))


def signing_message(header: dict[str, Any]) -> bytes:
    """The exact bytes an author signs."""
    return SIGNING_PREFIX + canonical(header, "header")


def build(identity: Identity, *, seq: int, ts: int, kind: str, body: dict[str, Any],
          actor: str | None = None, target: str | None = None) -> Entry:
    """Sign a new entry; raises :class:`EntryRejected` if it would be malformed."""
    try:
        body_hash = sha256_hex(canonical(body, "body"))
    except EncodingError as exc:
        raise EntryRejected(f"{exc.message} in body at {exc.path}") from None
    header = {"v": FORMAT_VERSION, "author": identity.public_key, "seq": seq, "ts": ts,
              "actor": actor, "kind": kind, "target": target, "body_hash": body_hash}
    problems = _header_field_problems(header)
    spec = KINDS.get(kind)
    if spec is None:
        problems.append(f"unknown kind {kind!r}")
    else:
        problems += header_problems(spec, actor, target) + body_problems(spec, body)
    if problems:
        raise EntryRejected("; ".join(problems))
    return Entry(entry_id(header), header, identity.sign(signing_message(header)), body)


def _header_field_problems(header: dict[str, Any]) -> list[str]:
    problems = []
    unknown = sorted(set(header) - set(HEADER_FIELDS))
    if unknown:
        problems.append(f"malformed header: unknown field {unknown[0]}")
    for name in HEADER_FIELDS:
        if name not in header:
            problems.append(f"malformed field {name}: missing")
    if problems:
        return problems

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if header["v"] != FORMAT_VERSION or not is_int(header["v"]):
        problems.append(f"malformed field v: unsupported format version {header['v']!r}")
    if not isinstance(header["author"], str) or not HEX64.fullmatch(header["author"]):
        problems.append("malformed field author: must be 64 lower-case hex digits")
    if not is_int(header["seq"]) or header["seq"] < 1:
        problems.append("malformed field seq: must be an integer >= 1")
    if not is_int(header["ts"]) or header["ts"] < 0:
        problems.append("malformed field ts: must be Unix milliseconds (integer >= 0)")
    if header["actor"] is not None and (not isinstance(header["actor"], str)
                                        or not ACCOUNT_NAME.fullmatch(header["actor"])):
        problems.append("malformed field actor: must be an account name (2-32 of a-z 0-9 . _ "
                        "-, starting with a letter or digit) or null")
    if not isinstance(header["kind"], str):
        problems.append("malformed field kind: must be a string")
    target = header["target"]
    if target is not None and (not isinstance(target, str) or not HEX64.fullmatch(target)):
        problems.append("malformed field target: must be an entry id or null")
    if not isinstance(header["body_hash"], str) or not HEX64.fullmatch(header["body_hash"]):
        problems.append("malformed field body_hash: must be 64 lower-case hex digits")
    return problems


def parse_wire(wire: Any, trusted: Any) -> Entry:
    """Check an entry from elsewhere completely, except its place in the author's log.

    ``trusted`` is a :class:`node.trust.TrustedSet`. Raises
    :class:`EntryRejected` with a specific reason (and the id when known).
    """
    if not isinstance(wire, dict):
        raise EntryRejected("malformed entry: not an object")
    unknown = sorted(set(wire) - {"id", "header", "sig", "body"})
    if unknown:
        raise EntryRejected(f"malformed entry: unknown field {unknown[0]}")
    header, sig, body = wire.get("header"), wire.get("sig"), wire.get("body")
    if not isinstance(header, dict):
        raise EntryRejected("malformed field header: missing or not an object")
    problems = _header_field_problems(header)
    if problems:
        claimed = wire.get("id")
        raise EntryRejected(problems[0], claimed if isinstance(claimed, str) else None)
    try:
        eid = entry_id(header)
    except EncodingError as exc:  # pragma: no cover - fields were checked above
        raise EntryRejected(f"malformed header: {exc}") from None
    if "id" in wire and wire["id"] != eid:
        raise EntryRejected("id mismatch: the id does not match the header", eid)
    spec: Kind | None = KINDS.get(header["kind"])
    if spec is None:
        raise EntryRejected(f"unknown kind {header['kind']!r}", eid)
    if not trusted.is_trusted(header["author"]):
        raise EntryRejected(f"untrusted author {header['author'][:16]}...", eid)
    if not isinstance(sig, str) or not SIG.fullmatch(sig):
        raise EntryRejected("malformed field sig: must be 128 lower-case hex digits", eid)
    if not verify_signature(header["author"], signing_message(header), sig):
        raise EntryRejected("bad signature", eid)
    problems = header_problems(spec, header["actor"], header["target"])
    if problems:
        raise EntryRejected(problems[0], eid)
    if body is not None:
        try:
            encoded = canonical(body, "body")
        except EncodingError as exc:
            raise EntryRejected(f"{exc.message} in body at {exc.path}", eid) from None
        if sha256_hex(encoded) != header["body_hash"]:
            raise EntryRejected("body hash mismatch", eid)
        problems = body_problems(spec, body)
        if problems:
            raise EntryRejected(problems[0], eid)
    return Entry(eid, dict(header), sig, body)


def from_row(eid: str, header_json: str, sig: str, body_json: str | None) -> Entry:
    """An entry as stored (already verified when it was stored)."""
    body = None if body_json is None else json.loads(body_json)
    return Entry(eid, json.loads(header_json), sig, body)
