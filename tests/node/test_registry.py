"""A node trusts a registry snapshot only with n-of-m admin signatures, and only newer ones."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from node.identity import Identity
from node.trust import TrustedSet
from node.trust.registry import (
    ANCHORS_FILE,
    SNAPSHOT_FILE,
    Admin,
    AdminSet,
    RegistryTrust,
    Signature,
    SignedSnapshot,
    SnapshotRejected,
    install_initial,
    signing_message,
)


def admins(*idents: Identity, threshold: int) -> AdminSet:
    return AdminSet(tuple(Admin(f"a{i}", k.public_key) for i, k in enumerate(idents)), threshold)


def node(name: str, key: str, status: str = "active") -> dict[str, Any]:
    return {"name": name, "id": name, "public_key": key, "status": status,
            "mesh_address": "10.42.0.1", "client_subnet": "10.64.0.0/24"}


def snapshot(serial: int, admin_set: AdminSet, nodes: list[dict[str, Any]],
             signers: list[Identity]) -> bytes:
    body = {"serial": serial, "nodes": nodes,
            "community": {"name": "Elm", "threshold": admin_set.threshold,
                          "admins": [{"name": a.name, "public_key": a.public_key}
                                     for a in admin_set.admins]}}
    message = signing_message(body)
    sigs = tuple(Signature(s.public_key, s.sign(message)) for s in signers)
    return SignedSnapshot(body, sigs).dumps()


@pytest.fixture
def keys() -> dict[str, Identity]:
    return {name: Identity.generate() for name in ("a", "b", "c", "d", "n1", "n2")}


def test_accepts_threshold_signatures_and_trusts_active_keys_only(
        tmp_path: Path, keys: dict[str, Identity]) -> None:
    trusted = admins(keys["a"], keys["b"], keys["c"], threshold=2)
    snap = snapshot(1, trusted, [node("n1", keys["n1"].public_key),
                                 node("n2", keys["n2"].public_key, "revoked")],
                    [keys["a"], keys["c"]])
    trust = install_initial(tmp_path, trusted, snap)
    assert isinstance(trust, TrustedSet)
    assert trust.is_trusted(keys["n1"].public_key)
    assert not trust.is_trusted(keys["n2"].public_key)  # revoked
    assert not trust.is_trusted(keys["a"].public_key)   # admins are not nodes
    assert trust.keys() == {keys["n1"].public_key}
    # survives a restart
    again = RegistryTrust(tmp_path)
    assert again.serial == 1 and again.is_trusted(keys["n1"].public_key)


def test_rejects_too_few_forged_and_untrusted_signatures(
        tmp_path: Path, keys: dict[str, Identity]) -> None:
    trusted = admins(keys["a"], keys["b"], keys["c"], threshold=2)
    trust = install_initial(tmp_path, trusted)
    nodes = [node("n1", keys["n1"].public_key)]
    with pytest.raises(SnapshotRejected, match="only 1 valid signature"):
        trust.offer(snapshot(1, trusted, nodes, [keys["a"]]))
    # the same admin twice counts once
    with pytest.raises(SnapshotRejected, match="only 1 valid signature"):
        trust.offer(snapshot(1, trusted, nodes, [keys["a"], keys["a"]]))
    # a forged signature: made by someone else but claiming admin b's key
    doc = json.loads(snapshot(1, trusted, nodes, [keys["a"], keys["d"]]))
    doc["signatures"][1]["public_key"] = keys["b"].public_key
    with pytest.raises(SnapshotRejected, match="does not verify"):
        trust.offer(json.dumps(doc).encode())
    # content changed after signing
    doc = json.loads(snapshot(1, trusted, nodes, [keys["a"], keys["b"]]))
    doc["snapshot"]["nodes"][0]["public_key"] = keys["n2"].public_key
    with pytest.raises(SnapshotRejected, match="does not verify"):
        trust.offer(json.dumps(doc).encode())
    assert trust.serial is None and not trust.is_trusted(keys["n1"].public_key)
    assert not (tmp_path / SNAPSHOT_FILE).exists()


def test_only_newer_serials_replace(tmp_path: Path, keys: dict[str, Identity]) -> None:
    trusted = admins(keys["a"], keys["b"], threshold=1)
    trust = install_initial(tmp_path, trusted,
                            snapshot(5, trusted, [node("n1", keys["n1"].public_key)],
                                     [keys["a"]]))
    same = (tmp_path / SNAPSHOT_FILE).read_bytes()
    assert trust.offer(same) is False
    with pytest.raises(SnapshotRejected, match="serial 4 is not newer than the installed serial 5"):
        trust.offer(snapshot(4, trusted, [node("n2", keys["n2"].public_key)], [keys["a"]]))
    with pytest.raises(SnapshotRejected, match="not newer"):
        trust.offer(snapshot(5, trusted, [node("n2", keys["n2"].public_key)], [keys["a"]]))
    assert trust.offer(snapshot(6, trusted, [node("n2", keys["n2"].public_key)], [keys["b"]]))
    assert trust.is_trusted(keys["n2"].public_key) and not trust.is_trusted(keys["n1"].public_key)
    assert RegistryTrust(tmp_path).serial == 6


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(format="other"), "not a registry snapshot"),
    (lambda d: d["snapshot"].update(serial=0), "snapshot.serial"),
    (lambda d: d["snapshot"]["nodes"][0].update(public_key="xyz"), "public_key"),
    (lambda d: d["snapshot"]["nodes"][0].update(status="maybe"), "status"),
    (lambda d: d["snapshot"]["community"].update(threshold=9), "threshold"),
    (lambda d: d["snapshot"].update(extra=1.5), "fraction"),
    (lambda d: d["signatures"][0].update(signature="00"), "128 lower-case hex"),
])
def test_malformed_snapshots_are_rejected_with_the_field(
        tmp_path: Path, keys: dict[str, Identity], mutate: Any, message: str) -> None:
    trusted = admins(keys["a"], threshold=1)
    trust = install_initial(tmp_path, trusted)
    doc = json.loads(snapshot(1, trusted, [node("n1", keys["n1"].public_key)], [keys["a"]]))
    mutate(doc)
    with pytest.raises(SnapshotRejected, match=message):
        trust.offer(json.dumps(doc).encode(), source="peer 10.42.0.7")
    with pytest.raises(SnapshotRejected, match="not a JSON file"):
        trust.offer(b"{truncated", source="peer")


def test_admin_rotation(tmp_path: Path, keys: dict[str, Identity]) -> None:
    """Rotate out admin a for d: old nodes follow, a alone signs nothing trusted."""
    old = admins(keys["a"], keys["b"], keys["c"], threshold=2)
    new = admins(keys["b"], keys["c"], keys["d"], threshold=2)
    nodes = [node("n1", keys["n1"].public_key)]
    trust = install_initial(tmp_path, old, snapshot(1, old, nodes, [keys["a"], keys["b"]]))
    # signed only by the new set's newcomer + one old admin: not enough for an old node
    with pytest.raises(SnapshotRejected, match="trusted admins"):
        trust.offer(snapshot(2, new, nodes, [keys["d"], keys["b"]]))
    # signed by the old admins only: the new set never approved it (typo protection)
    with pytest.raises(SnapshotRejected, match="admins it names"):
        trust.offer(snapshot(2, new, nodes, [keys["a"], keys["b"]]))
    # the rotation snapshot: 2 of the old set and 2 of the new set
    assert trust.offer(snapshot(2, new, nodes, [keys["a"], keys["b"], keys["d"]]))
    assert trust.anchors.keys == new.keys
    assert json.loads((tmp_path / ANCHORS_FILE).read_text())["threshold"] == 2
    # the removed admin can no longer get anything trusted, even with a newcomer's help
    evil = snapshot(3, old, [node("n2", keys["n2"].public_key)], [keys["a"], keys["b"]])
    with pytest.raises(SnapshotRejected, match="only 1 valid signature"):
        trust.offer(evil)
    evil_alone = snapshot(3, admins(keys["a"], threshold=1), [], [keys["a"]])
    with pytest.raises(SnapshotRejected, match="only 0 valid signature"):
        trust.offer(evil_alone)
    # the new admins carry on; after a restart too
    assert trust.offer(snapshot(3, new, nodes, [keys["c"], keys["d"]]))
    assert RegistryTrust(tmp_path).serial == 3


def test_concurrent_offers_install_once(tmp_path: Path, keys: dict[str, Identity]) -> None:
    trusted = admins(keys["a"], threshold=1)
    trust = install_initial(tmp_path, trusted)
    data = snapshot(1, trusted, [node("n1", keys["n1"].public_key)], [keys["a"]])
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(trust.offer(data)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_missing_or_bad_anchors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SnapshotRejected, match="trust anchors file not found"):
        RegistryTrust(tmp_path)
    (tmp_path / ANCHORS_FILE).write_text('{"format": "meshhub-trust-anchors-v1", "admins": []}')
    with pytest.raises(SnapshotRejected, match="admins"):
        RegistryTrust(tmp_path)


def test_the_registry_says_which_node_answers_at_a_mesh_address(
        tmp_path: Path, keys: dict[str, Identity]) -> None:
    """What a node signs its requests for, and accepts answers from, at an address
    (docs/replication.md §2): the active node the snapshot gives it, else nobody."""
    trusted = admins(keys["a"], threshold=1)
    revoked = {**node("n2", keys["n2"].public_key, "revoked"), "mesh_address": "10.42.0.2"}
    trust = install_initial(tmp_path, trusted, snapshot(
        1, trusted, [node("n1", keys["n1"].public_key), revoked], [keys["a"]]))
    assert trust.key_at("10.42.0.1") == keys["n1"].public_key
    assert trust.key_at("10.42.0.2") is None  # revoked: no node answers for it
    assert trust.key_at("10.42.0.9") is None
