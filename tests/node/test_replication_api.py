"""The replication API: vector, digest, entries_since and ingest with its reasons."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.identity import Identity
from node.store import Store
from tests.node.test_store_support import FakeClock, dump_views, listing_body, open_store


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    a, b = Identity.generate(), Identity.generate()
    clock = FakeClock()
    with open_store(tmp_path / "a.db", a, b, clock=clock) as sa, \
            open_store(tmp_path / "b.db", b, a, clock=clock) as sb:
        yield sa, sb


def sync(x: Store, y: Store) -> None:
    """Exchange until both hold the same log."""
    for _ in range(10):
        y.ingest(x.entries_since(y.vector()))
        x.ingest(y.entries_since(x.vector()))
        if x.digest() == y.digest():
            return
    raise AssertionError("did not converge")


def one_entry(store: Store) -> dict[str, Any]:
    wire = store.append("listing.post", listing_body(), actor="ada")
    return copy.deepcopy(wire)


def test_two_nodes_converge_to_identical_views(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    post = sa.append("listing.post", listing_body("Sofa"), actor="ada")
    sb.append("notice.post", {"title": "Water off", "body": "Tue", "urgent": True}, actor="bo")
    sb.append("listing.edit", {"pinned": True}, actor="bo", target=post["id"])
    sa.append("submission.create", {"category": "wanted", "title": "Ladder", "body": "x"})
    sync(sa, sb)
    assert sa.vector() == sb.vector()
    assert len(sa.vector()) == 2
    assert sa.digest() == sb.digest() and len(sa.digest()) == 16
    assert dump_views(sa) == dump_views(sb)
    assert sb.listing(post["id"]).pinned is True


def test_entries_since_returns_only_what_is_missing_in_order(pair: tuple[Store, Store]) -> None:
    sa, _ = pair
    ids = [sa.append("listing.post", listing_body(f"item {i}"), actor="ada")["id"]
           for i in range(5)]
    me = sa.identity.public_key
    assert [w["id"] for w in sa.entries_since({})] == ids
    assert [w["id"] for w in sa.entries_since({me: 3})] == ids[3:]
    assert [w["id"] for w in sa.entries_since({me: 0}, limit=2)] == ids[:2]
    assert sa.entries_since(sa.vector()) == []


def test_entries_since_round_trips_through_json(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    sa.append("listing.post", listing_body("Café crème"), actor="ada")
    wires = json.loads(json.dumps(sa.entries_since({})))
    report = sb.ingest(wires)
    assert len(report.accepted) == 1 and report.rejected == []


def test_duplicate_is_reported_not_rejected(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    wire = one_entry(sa)
    assert sb.ingest([wire]).accepted == [wire["id"]]
    report = sb.ingest([wire])
    assert report.duplicates == [wire["id"]] and report.accepted == [] and report.rejected == []


def assert_rejected(store: Store, wire: Any, reason: str) -> None:
    before = (dump_views(store), store.vector())
    report = store.ingest([wire])
    assert report.accepted == []
    assert len(report.rejected) == 1, report
    assert reason in report.rejected[0][1], report.rejected
    assert (dump_views(store), store.vector()) == before


def test_tampered_body_is_rejected(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    wire = one_entry(sa)
    wire["body"]["title"] = "Blue sofb"
    assert_rejected(sb, wire, "body hash mismatch")


def test_tampered_header_is_rejected(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    wire = one_entry(sa)
    del wire["id"]
    wire["header"]["ts"] += 1
    assert_rejected(sb, wire, "bad signature")


def test_tampered_signature_is_rejected(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    wire = one_entry(sa)
    sig = wire["sig"]
    wire["sig"] = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
    assert_rejected(sb, wire, "bad signature")


def test_wrong_id_is_rejected(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    wire = one_entry(sa)
    wire["id"] = "0" * 64
    assert_rejected(sb, wire, "id mismatch")


def test_foreign_signed_entry_is_rejected(pair: tuple[Store, Store], tmp_path: Path) -> None:
    _, sb = pair
    stranger = Identity.generate()
    with open_store(tmp_path / "x.db", stranger) as sx:
        wire = one_entry(sx)
    assert_rejected(sb, wire, "untrusted author")


def test_gap_is_rejected_then_filled(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    first, second = one_entry(sa), one_entry(sa)
    assert_rejected(sb, second, "gap: have up to 0")
    report = sb.ingest([second, first])  # any order within one batch is fine
    assert report.accepted == [first["id"], second["id"]]


def test_fork_is_rejected(pair: tuple[Store, Store], tmp_path: Path) -> None:
    sa, sb = pair
    sb.ingest([one_entry(sa)])
    # Same key, fresh database: its seq 1 differs from the one sb already holds.
    with open_store(tmp_path / "a2.db", sa.identity, sb.identity) as other:
        forked = other.append("listing.post", listing_body("Other"), actor="ada")
    assert_rejected(sb, forked, "fork: conflicting entry for seq 1")


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda w: w["body"].__setitem__("price", 2.5), "float in body at body.price"),
    (lambda w: w["header"].__setitem__("kind", "poem.post"), "unknown kind"),
    (lambda w: w["header"].__setitem__("seq", 0), "malformed field seq"),
    (lambda w: w["header"].__setitem__("author", "XYZ"), "malformed field author"),
    (lambda w: w["header"].__setitem__("extra", 1), "unknown field extra"),
    (lambda w: w.__setitem__("sig", "zz"), "malformed field sig"),
    (lambda w: w.pop("header"), "malformed field header"),
])
def test_malformed_entries_are_rejected_with_reason(pair: tuple[Store, Store], mutate: Any,
                                                    reason: str) -> None:
    sa, sb = pair
    wire = one_entry(sa)
    wire.pop("id")
    mutate(wire)
    assert_rejected(sb, wire, reason)


def test_not_an_object_is_rejected(pair: tuple[Store, Store]) -> None:
    _, sb = pair
    assert sb.ingest(["nonsense"]).rejected == [(None, "malformed entry: not an object")]


def test_rejected_entry_does_not_spoil_the_rest_of_the_batch(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    good, bad = one_entry(sa), one_entry(sa)
    bad["body"]["title"] = "tampered"
    report = sb.ingest([good, bad])
    assert report.accepted == [good["id"]]
    assert report.rejected == [(bad["id"], "body hash mismatch")]
    assert sb.vector() == {sa.identity.public_key: 1}


def test_erased_entry_is_accepted_as_erased(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    wire = one_entry(sa)
    wire["body"] = None
    assert sb.ingest([wire]).accepted == [wire["id"]]
    assert sb.entry(wire["id"])["body"] is None
    assert sb.listing(wire["id"]) is None  # an erased item is not shown


def test_deleted_item_arrives_erased_everywhere(pair: tuple[Store, Store]) -> None:
    sa, sb = pair
    post = sa.append("listing.post", listing_body("Secret"), actor="ada")
    sa.append("listing.delete", {}, actor="ada", target=post["id"])
    assert sa.entry(post["id"])["body"] is None
    sync(sa, sb)
    assert sb.entry(post["id"])["body"] is None
    assert sb.search("Secret") == []


def test_static_trust_and_config_trust(tmp_path: Path) -> None:
    from node.config import parse_config
    from node.trust import StaticTrust, TrustedSet, trust_from_config

    me, other = Identity.generate(), Identity.generate()
    trust = trust_from_config(parse_config(f"[trust]\nnode_keys = ['{other.public_key}']\n"),
                              me)
    assert isinstance(trust, TrustedSet)
    assert trust.keys() == {me.public_key, other.public_key}
    assert trust.is_trusted(other.public_key) and not trust.is_trusted("0" * 64)
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        StaticTrust(["nope"])
