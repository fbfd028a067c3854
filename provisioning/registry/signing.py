"""Admins sign the registry's current state; ``export`` writes the signed snapshot.

``sign`` builds the snapshot (community + every node, see
:mod:`node.trust.registry` for the format) and keeps it in
``signatures/snapshot.json`` with a serial number. If the registry changed
since the last signature, the serial goes up and the old signatures (now
over different content) are dropped. Each admin's signature is its own file,
``signatures/<admin>.sig``, so admins on different laptops can sign and merge
with git without conflicts.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from node.atomic import atomic_write
from node.identity import fingerprint, load_identity
from node.trust.registry import (
    ANCHORS_FORMAT,
    AdminSet,
    Signature,
    SignedSnapshot,
    SnapshotRejected,
    load_anchors,
    parse_snapshot,
    signing_message,
    valid_signers,
    verify_snapshot,
)
from provisioning.errors import RegistryError
from provisioning.registry.files import PENDING_FILE, SIGNATURES_DIR, RegistryFiles
from provisioning.registry.ops import load_registry

_COMMUNITY_KEYS = ("name", "ssid", "country", "mesh_range", "client_range", "client_prefix",
                   "threshold", "channels", "admins")
_NODE_KEYS = ("name", "id", "status", "public_key", "mesh_address", "client_subnet",
              "hardware", "installed", "revoked_at", "location")


@dataclass(frozen=True)
class SignResult:
    """What ``sign`` did: the serial signed, who signed, and how far to the threshold."""

    serial: int
    signer: str
    valid: int
    threshold: int
    dropped: int


def snapshot_content(files: RegistryFiles) -> dict[str, Any]:
    """The registry's current state as snapshot data (without the serial).

    Owners' contact details stay in the registry: nodes do not need them.
    """
    assert files.community is not None
    community = {k: _plain(files.community.data[k]) for k in _COMMUNITY_KEYS
                 if k in files.community.data}
    community.setdefault("client_prefix", 24)
    nodes = []
    for name in sorted(files.nodes):
        data = files.nodes[name].data
        nodes.append({k: _plain(data[k]) for k in _NODE_KEYS if k in data})
    return {"community": community, "nodes": nodes}


def pending(root: Path) -> dict[str, Any] | None:
    """The snapshot being signed (``signatures/snapshot.json``), if any."""
    path = root / SIGNATURES_DIR / PENDING_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: damaged ({exc}); delete it and sign again") from None
    if not isinstance(data, dict) or not isinstance(data.get("serial"), int):
        raise RegistryError(f"{path}: has no serial; delete it and sign again")
    return data


def sign(root: str | Path, key_file: str | Path, *, retiring: bool = False) -> SignResult:
    """Add the admin whose key is ``key_file``'s signature over the current state.

    ``retiring`` allows a key that community.toml no longer lists (its
    signature still counts for nodes that trust it: the rotation path).
    """
    base = Path(root)
    files = load_registry(base)
    identity = load_identity(key_file)
    admins = {a["public_key"]: a["name"] for a in files.community.data["admins"]}  # type: ignore[union-attr]
    if identity.public_key not in admins and not retiring:
        raise RegistryError(f"{key_file}: key {identity.fingerprint} is not an admin in "
                            "community.toml; pass --retiring if it is an admin key being "
                            "rotated out (see docs/registry.md)")
    content = snapshot_content(files)
    current = pending(base)
    dropped = 0
    if current is not None and {k: v for k, v in current.items() if k != "serial"} == content:
        snapshot = current
    else:
        serial = current["serial"] + 1 if current else 1
        snapshot = {"serial": serial, **content}
        dropped = _drop_signatures(base, keep_serial=serial)
        atomic_write(base / SIGNATURES_DIR / PENDING_FILE,
                     json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    signer = admins.get(identity.public_key) or f"retiring-{identity.public_key[:16]}"
    record = {"admin": signer, "public_key": identity.public_key, "serial": snapshot["serial"],
              "signature": identity.sign(signing_message(snapshot))}
    atomic_write(base / SIGNATURES_DIR / f"{signer}.sig", tomli_w.dumps(record))
    signed = collect(base)
    good, _ = valid_signers(signed, signed.admin_set)
    return SignResult(snapshot["serial"], signer, len(good), signed.admin_set.threshold, dropped)


def collect(root: str | Path) -> SignedSnapshot:
    """The pending snapshot with every signature file made for its serial."""
    base = Path(root)
    snapshot = pending(base)
    if snapshot is None:
        raise RegistryError(f"{base}: nothing signed yet; run 'meshhub-provision registry sign "
                            "--key ADMIN.key' first")
    signatures: list[Signature] = []
    for path in sorted((base / SIGNATURES_DIR).glob("*.sig")):
        try:
            record = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{path}: damaged signature file ({exc}); delete it") from None
        if record.get("serial") == snapshot["serial"]:
            signatures.append(Signature(str(record.get("public_key")),
                                        str(record.get("signature"))))
    return SignedSnapshot(snapshot, tuple(signatures))


def export(root: str | Path, out: str | Path, against: str | Path | None = None
           ) -> SignedSnapshot:
    """Write the signed snapshot nodes receive to ``out``, after checking it as a node would.

    The registry must not have changed since it was signed, the snapshot must
    carry its own threshold of signatures, and with ``against`` (the snapshot
    or trust anchors nodes hold now) a node holding that must accept it.
    """
    base = Path(root)
    files = load_registry(base)
    signed = collect(base)
    if {k: v for k, v in signed.snapshot.items() if k != "serial"} != snapshot_content(files):
        raise RegistryError(f"{base}: the registry changed since it was signed; run "
                            "'meshhub-provision registry sign' again")
    data = signed.dumps()
    try:
        checked = parse_snapshot(data, str(out))
        trusted, serial = _trusted_from(against) if against else (checked.admin_set, None)
        verify_snapshot(checked, trusted, str(out), serial)
    except SnapshotRejected as exc:
        raise RegistryError(f"{out}: not exported: {exc.reason}") from None
    atomic_write(out, data)
    return checked


def describe_signers(signed: SignedSnapshot) -> list[str]:
    """One line per signature: admin name (or fingerprint) and whether it verifies."""
    names = {a.public_key: a.name for a in signed.admin_set.admins}
    good, _ = valid_signers(signed, AdminSet(tuple(signed.admin_set.admins), 1))
    lines = []
    for sig in signed.signatures:
        who = names.get(sig.public_key, f"(not an admin of this snapshot) "
                                         f"{fingerprint(sig.public_key)}")
        state = "valid" if sig.public_key in good else (
            "counts only for nodes that still trust it" if sig.public_key not in names
            else "INVALID")
        lines.append(f"{who}: {state}")
    return lines


def _trusted_from(path: str | Path) -> tuple[AdminSet, int | None]:
    raw = Path(path).read_bytes()
    try:
        kind = json.loads(raw.decode("utf-8")).get("format")
    except (ValueError, UnicodeDecodeError, AttributeError):
        kind = None
    if kind == ANCHORS_FORMAT:
        return load_anchors(path), None
    previous = parse_snapshot(raw, str(path))
    return previous.admin_set, previous.serial


def _drop_signatures(base: Path, keep_serial: int) -> int:
    dropped = 0
    for path in (base / SIGNATURES_DIR).glob("*.sig"):
        try:
            serial = tomllib.loads(path.read_text(encoding="utf-8")).get("serial")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            serial = None
        if serial != keep_serial:
            path.unlink()
            dropped += 1
    return dropped


def _plain(value: Any) -> Any:
    """TOML values as snapshot JSON: dates as ISO text, location as "lat,lon" text."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        if set(value) == {"lat", "lon"}:
            return f"{float(value['lat']):.6f},{float(value['lon']):.6f}"
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    return value
