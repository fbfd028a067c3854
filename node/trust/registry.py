"""The community registry as a node sees it: a signed snapshot and the keys it trusts.

The community's admins keep the registry (``provisioning.registry``) and sign
its current state; the node receives a *signed snapshot* file and trusts it
only when at least ``threshold`` of the admins it already trusts signed it
(n-of-m, as Gluon does for firmware). Its active node keys are then the set
replication accepts entries from (:class:`RegistryTrust`, a ``TrustedSet``).

This module is the one definition of the snapshot format; provisioning
imports it. A signed snapshot file is JSON::

    {"format": "meshhub-registry-snapshot-v1",
     "snapshot": {"serial": 7, "community": {...}, "nodes": [{...}, ...]},
     "signatures": [{"public_key": "<64 hex>", "signature": "<128 hex>"}, ...]}

Each signature is Ed25519 over :data:`SIGNING_CONTEXT` followed by the
canonical JSON of ``snapshot`` (keys sorted, no whitespace, UTF-8; floats are
not allowed, so every implementation encodes the same bytes).

Admin rotation: a snapshot may name a new admin set. A node accepts it when
``threshold`` of its *currently* trusted admins signed it, and the snapshot
must also carry ``threshold`` signatures of the admins it names itself (so a
mistyped key cannot lock the community out). Once accepted, the new admin set
becomes the node's trust anchors.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from node.atomic import atomic_write
from node.canonical import EncodingError, canonical
from node.errors import NodeError
from node.frozen import frozen
from node.identity import fingerprint, verify_signature

SNAPSHOT_FORMAT = "meshhub-registry-snapshot-v1"
ANCHORS_FORMAT = "meshhub-trust-anchors-v1"
#: Prefixed to the canonical snapshot before signing, so that a registry
#: signature can never be mistaken for a signature of anything else.
SIGNING_CONTEXT = b"meshhub registry snapshot v1\n"
#: File names inside a node's registry directory (``<data_dir>/registry``).
ANCHORS_FILE = "anchors.json"
SNAPSHOT_FILE = "snapshot.json"
NODE_STATUSES = ("active", "revoked")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class SnapshotRejected(NodeError, ValueError):
    """A registry snapshot (or trust anchors file) is malformed or not trusted.

    ``source`` names the file or peer it came from; the message says why.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: registry snapshot rejected: {reason}")


@frozen
class Admin:
    """One community admin: a name for people and the Ed25519 key that signs."""

    name: str
    public_key: str


@frozen
class AdminSet:
    """The admins whose signatures count, and how many of them must sign."""

    admins: tuple[Admin, ...]
    threshold: int

    @property
    def keys(self) -> frozenset[str]:
        """The admins' public keys."""
        return frozenset(a.public_key for a in self.admins)

    def to_json(self) -> dict[str, Any]:
        """The trust anchors file content for this admin set."""
        return {"format": ANCHORS_FORMAT, "threshold": self.threshold,
                "admins": [{"name": a.name, "public_key": a.public_key} for a in self.admins]}


@frozen
class Signature:
    """One admin's signature over a snapshot."""

    public_key: str
    signature: str


@frozen
class SignedSnapshot:
    """A structurally valid snapshot with its signatures (not yet verified)."""

    snapshot: dict[str, Any]
    signatures: tuple[Signature, ...]

    @property
    def serial(self) -> int:
        """The snapshot's serial number; a newer snapshot has a higher one."""
        return int(self.snapshot["serial"])

    @property
    def admin_set(self) -> AdminSet:
        """The admins and threshold this snapshot names."""
        return admin_set_from(self.snapshot["community"], "snapshot.community")

    @property
    def active_keys(self) -> frozenset[str]:
        """Public keys of the nodes whose status is ``active`` (revoked excluded)."""
        return frozenset(n["public_key"] for n in self.snapshot["nodes"]
                         if n["status"] == "active")

    def to_json(self) -> dict[str, Any]:
        """The signed snapshot file content."""
        return {"format": SNAPSHOT_FORMAT, "snapshot": self.snapshot,
                "signatures": [{"public_key": s.public_key, "signature": s.signature}
                               for s in self.signatures]}

    def dumps(self) -> bytes:
        """The signed snapshot file as bytes (stable, readable JSON)."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
                + "\n").encode("utf-8")


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON (:mod:`node.canonical`) of ``value``; ValueError naming the place if
    it holds something that has none (a float, an integer beyond 2**53 - 1)."""
    try:
        return canonical(value, "snapshot")
    except EncodingError as exc:
        reason = ("numbers with a fraction are not allowed; use a string"
                  if exc.message == "float" else exc.message)
        raise ValueError(f"{exc.path}: {reason}") from None


def signing_message(snapshot: Mapping[str, Any]) -> bytes:
    """The exact bytes an admin signs for ``snapshot``."""
    return SIGNING_CONTEXT + canonical_bytes(dict(snapshot))


def admin_set_from(community: Any, where: str) -> AdminSet:
    """Read ``admins`` and ``threshold`` from a community table; raise ValueError if bad."""
    if not isinstance(community, Mapping):
        raise ValueError(f"{where}: expected an object")
    admins_raw = community.get("admins")
    if not isinstance(admins_raw, list) or not admins_raw:
        raise ValueError(f"{where}.admins: expected a non-empty list of admins")
    admins: list[Admin] = []
    for index, item in enumerate(admins_raw):
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}.admins[{index}]: expected an object with name and "
                             "public_key")
        key = item.get("public_key")
        if not isinstance(key, str) or not _HEX64.fullmatch(key):
            raise ValueError(f"{where}.admins[{index}].public_key: must be 64 lower-case "
                             "hex digits")
        admins.append(Admin(str(item.get("name", "")), key))
    if len({a.public_key for a in admins}) != len(admins):
        raise ValueError(f"{where}.admins: the same key is listed twice")
    threshold = community.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int) \
            or not 1 <= threshold <= len(admins):
        raise ValueError(f"{where}.threshold: must be an integer from 1 to {len(admins)} "
                         f"(the number of admins), found {threshold!r}")
    return AdminSet(tuple(admins), threshold)


def parse_snapshot(data: bytes, source: str = "<snapshot>") -> SignedSnapshot:
    """Parse and structurally check a signed snapshot file (signatures not verified)."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotRejected(source, f"not a JSON file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotRejected(source, f"not a registry snapshot (format must be "
                                       f"{SNAPSHOT_FORMAT!r})")
    snapshot = doc.get("snapshot")
    try:
        _check_snapshot(snapshot)
        signatures = _parse_signatures(doc.get("signatures"))
    except ValueError as exc:
        raise SnapshotRejected(source, str(exc)) from None
    return SignedSnapshot(snapshot, signatures)


def valid_signers(signed: SignedSnapshot, admin_set: AdminSet) -> tuple[set[str], list[str]]:
    """Which of ``admin_set``'s keys validly signed; and the problems seen.

    A key counts once however often it appears. A signature that names an
    admin key but does not verify is reported as forged.
    """
    return signers_of(signing_message(signed.snapshot), signed.signatures, admin_set)


def signers_of(message: bytes, signatures: Iterable[Signature],
               admin_set: AdminSet) -> tuple[set[str], list[str]]:
    """Which of ``admin_set``'s keys validly signed ``message``; and the problems seen.

    The n-of-m check shared by registry snapshots and release manifests
    (:mod:`node.update.manifest`): a key counts once however often it appears.
    """
    good: set[str] = set()
    problems: list[str] = []
    for sig in signatures:
        if sig.public_key not in admin_set.keys:
            continue
        if verify_signature(sig.public_key, message, sig.signature):
            good.add(sig.public_key)
        else:
            problems.append(f"the signature of admin key {fingerprint(sig.public_key)} does not "
                            "verify (forged, or made over different content)")
    return good, problems


def verify_snapshot(signed: SignedSnapshot, trusted: AdminSet, source: str = "<snapshot>",
                    current_serial: int | None = None) -> SignedSnapshot:
    """Return ``signed`` if a node trusting ``trusted`` may accept it, else raise.

    Checks: at least ``trusted.threshold`` valid signatures of trusted admins;
    at least the snapshot's own threshold of its own admins; a serial higher
    than ``current_serial``.
    """
    if current_serial is not None and signed.serial <= current_serial:
        raise SnapshotRejected(source, f"serial {signed.serial} is not newer than the "
                                       f"installed serial {current_serial}")
    good, problems = valid_signers(signed, trusted)
    if len(good) < trusted.threshold:
        detail = ("; " + "; ".join(problems)) if problems else ""
        raise SnapshotRejected(source, f"only {len(good)} valid signature(s) of trusted admins, "
                                       f"{trusted.threshold} needed{detail}")
    own = signed.admin_set
    own_good, own_problems = valid_signers(signed, own)
    if len(own_good) < own.threshold:
        detail = ("; " + "; ".join(own_problems)) if own_problems else ""
        raise SnapshotRejected(source, f"only {len(own_good)} valid signature(s) of the admins "
                                       f"it names, {own.threshold} needed{detail}")
    return signed


def load_anchors(path: str | os.PathLike[str]) -> AdminSet:
    """Read a trust anchors file (shipped on the card, updated on each accepted snapshot)."""
    file = Path(path)
    try:
        doc = json.loads(file.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise SnapshotRejected(str(file), "trust anchors file not found; copy the community's "
                                          "anchors.json onto the node") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotRejected(str(file), f"trust anchors file is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != ANCHORS_FORMAT:
        raise SnapshotRejected(str(file), f"not a trust anchors file (format must be "
                                          f"{ANCHORS_FORMAT!r})")
    try:
        return admin_set_from(doc, "anchors")
    except ValueError as exc:
        raise SnapshotRejected(str(file), str(exc)) from None


def dump_anchors(admin_set: AdminSet) -> bytes:
    """The trust anchors file for ``admin_set``."""
    return (json.dumps(admin_set.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")


class RegistryTrust:
    """The node keys a node trusts, from the newest valid signed registry snapshot.

    Implements :class:`node.trust.TrustedSet` (``is_trusted``, ``keys``). State lives in one
    directory: ``anchors.json`` (the admins trusted now) and ``snapshot.json``
    (the installed snapshot). :meth:`offer` installs a newer valid snapshot
    received from the mesh; everything else is refused with a reason.
    Thread-safe: replication may offer while the store asks.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._anchors = load_anchors(self.directory / ANCHORS_FILE)
        self._snapshot: SignedSnapshot | None = None
        path = self.directory / SNAPSHOT_FILE
        if path.exists():
            signed = parse_snapshot(path.read_bytes(), str(path))
            self._snapshot = verify_snapshot(signed, self._anchors, str(path))

    @property
    def serial(self) -> int | None:
        """Serial of the installed snapshot, or ``None`` before the first one."""
        return self._snapshot.serial if self._snapshot else None

    @property
    def anchors(self) -> AdminSet:
        """The admins whose signatures this node currently counts."""
        return self._anchors

    @property
    def snapshot(self) -> SignedSnapshot | None:
        """The installed snapshot (to pass on to peers), if any."""
        return self._snapshot

    def is_trusted(self, public_key_hex: str) -> bool:
        """True when ``public_key_hex`` belongs to an active registered node."""
        snap = self._snapshot
        return snap is not None and public_key_hex in snap.active_keys

    def keys(self) -> frozenset[str]:
        """Every active node key of the installed snapshot (revoked excluded)."""
        snap = self._snapshot
        return snap.active_keys if snap else frozenset()

    def key_at(self, mesh_address: str) -> str | None:
        """The key of the active node the snapshot gives ``mesh_address`` (None: none).

        The address is the registry's (``mesh_address``, allocated by
        ``meshhub-provision register``), so an agent answering at it must be
        that node: a box announcing the address in babeld, or the node's name
        over zeroconf, cannot answer as it (docs/security.md).
        """
        snap = self._snapshot
        if snap is None:
            return None
        for node in snap.snapshot["nodes"]:
            if node.get("mesh_address") == mesh_address and node["status"] == "active":
                return str(node["public_key"])
        return None

    def offer(self, data: bytes, source: str = "<peer>") -> bool:
        """Install the signed snapshot ``data`` if it is valid and newer.

        Returns False when it is the snapshot already installed; raises
        :class:`SnapshotRejected` (saying why) for anything not trusted,
        malformed or older. The snapshot is written before the anchors, so a
        crash in between leaves a state that still verifies.
        """
        signed = parse_snapshot(data, source)
        with self._lock:
            current = self._snapshot
            if current is not None and signed.serial == current.serial \
                    and canonical_bytes(signed.snapshot) == canonical_bytes(current.snapshot):
                return False
            verify_snapshot(signed, self._anchors, source,
                            current.serial if current else None)
            atomic_write(self.directory / SNAPSHOT_FILE, signed.dumps())
            atomic_write(self.directory / ANCHORS_FILE, dump_anchors(signed.admin_set))
            self._snapshot = signed
            self._anchors = signed.admin_set
            return True


def install_initial(directory: str | os.PathLike[str], anchors: AdminSet,
                    snapshot: bytes | None = None) -> RegistryTrust:
    """Set up a node's registry directory (used at first boot and in tests)."""
    target = Path(directory)
    atomic_write(target / ANCHORS_FILE, dump_anchors(anchors))
    trust = RegistryTrust(target)
    if snapshot is not None:
        trust.offer(snapshot, "<card>")
    return trust


# --- structural checks ------------------------------------------------------

def _check_snapshot(snapshot: Any) -> None:
    if not isinstance(snapshot, dict):
        raise ValueError("snapshot: expected an object")
    serial = snapshot.get("serial")
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 1:
        raise ValueError(f"snapshot.serial: expected a positive integer, found {serial!r}")
    admin_set_from(snapshot.get("community"), "snapshot.community")
    nodes = snapshot.get("nodes")
    if not isinstance(nodes, list):
        raise ValueError("snapshot.nodes: expected a list")
    _check_nodes(nodes)
    canonical_bytes(snapshot)


def _check_nodes(nodes: Iterable[Any]) -> None:
    seen_names: set[str] = set()
    seen_keys: set[str] = set()
    for index, node in enumerate(nodes):
        where = f"snapshot.nodes[{index}]"
        if not isinstance(node, dict):
            raise ValueError(f"{where}: expected an object")
        name, key, status = node.get("name"), node.get("public_key"), node.get("status")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"{where}.name: must be a host name, found {name!r}")
        if not isinstance(key, str) or not _HEX64.fullmatch(key):
            raise ValueError(f"{where}.public_key: must be 64 lower-case hex digits")
        if status not in NODE_STATUSES:
            raise ValueError(f"{where}.status: must be one of {', '.join(NODE_STATUSES)}, "
                             f"found {status!r}")
        if name in seen_names or key in seen_keys:
            raise ValueError(f"{where}: node name or key {name!r} appears twice")
        seen_names.add(name)
        seen_keys.add(key)


def parse_signatures(raw: Any) -> tuple[Signature, ...]:
    """Check a ``signatures`` list (hex public_key and signature each); ValueError if bad."""
    return _parse_signatures(raw)


def _parse_signatures(raw: Any) -> tuple[Signature, ...]:
    if not isinstance(raw, list):
        raise ValueError("signatures: expected a list")
    result: list[Signature] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"signatures[{index}]: expected an object")
        key, sig = item.get("public_key"), item.get("signature")
        if not isinstance(key, str) or not _HEX64.fullmatch(key):
            raise ValueError(f"signatures[{index}].public_key: must be 64 lower-case hex digits")
        if not isinstance(sig, str) or not _HEX128.fullmatch(sig):
            raise ValueError(f"signatures[{index}].signature: must be 128 lower-case hex digits")
        result.append(Signature(key, sig))
    return tuple(result)
