"""The canonical encoding, entry ids and signatures (docs/entry-format.md)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from node.canonical import EncodingError, canonical, nfc
from node.errors import EntryRejected
from node.identity import Identity, verify_signature
from node.store.entries import SIGNING_PREFIX, build, entry_id, signing_message


def test_keys_sorted_no_whitespace_utf8() -> None:
    assert canonical({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()


def test_float_is_refused_with_its_path() -> None:
    with pytest.raises(EncodingError) as info:
        canonical({"price": {"amount": 1.5}}, "body")
    assert info.value.path == "body.price.amount"
    assert "float" in str(info.value)


def test_integers_beyond_2_53_are_refused() -> None:
    canonical({"n": 2**53 - 1})
    with pytest.raises(EncodingError, match="out of range"):
        canonical({"n": 2**53})


def test_nfc_normalises_strings_and_keys() -> None:
    decomposed = "Cafe\u0301"
    assert nfc({decomposed: [decomposed]}) == {"Café": ["Café"]}


def test_id_is_sha256_of_canonical_header_and_signature_covers_prefix() -> None:
    ident = Identity(bytes(range(32)))
    entry = build(ident, seq=1, ts=1_735_689_600_000, kind="notice.post",
                  body={"title": "Water off", "body": "Tuesday 9-12"}, actor="ada")
    assert entry.id == hashlib.sha256(canonical(entry.header)).hexdigest()
    assert entry.id == entry_id(entry.header)
    assert signing_message(entry.header) == SIGNING_PREFIX + canonical(entry.header)
    assert verify_signature(ident.public_key, signing_message(entry.header), entry.sig)
    assert entry.header["body_hash"] == hashlib.sha256(canonical(entry.body)).hexdigest()
    assert list(entry.header) == ["v", "author", "seq", "ts", "actor", "kind", "target",
                                  "body_hash"]


def test_signatures_are_deterministic() -> None:
    ident = Identity(bytes(range(32)))
    first = build(ident, seq=1, ts=5, kind="notice.post", body={"title": "a", "body": ""},
                  actor="ada")
    second = build(ident, seq=1, ts=5, kind="notice.post", body={"title": "a", "body": ""},
                   actor="ada")
    assert first == second


def test_build_refuses_malformed_entries() -> None:
    ident = Identity.generate()
    with pytest.raises(EntryRejected, match="unknown kind"):
        build(ident, seq=1, ts=1, kind="poem.post", body={}, actor="ada")
    with pytest.raises(EntryRejected, match=r"float in body at body\.title"):
        build(ident, seq=1, ts=1, kind="notice.post", body={"title": 1.0, "body": ""},
              actor="ada")
    with pytest.raises(EntryRejected, match="actor: required"):
        build(ident, seq=1, ts=1, kind="notice.post", body={"title": "a", "body": ""})


def test_spec_test_vector_matches_the_implementation() -> None:
    spec = (Path(__file__).parents[2] / "docs" / "entry-format.md").read_text(encoding="utf-8")
    section = spec.split("## 10. Test vector", 1)[1]

    def value(label: str) -> str:
        match = re.search(rf"{re.escape(label)}[^`]*`([0-9a-f]+)`", section)
        assert match, label
        return match.group(1)

    blocks = re.findall(r"```\n(.*?)\n```", section, re.S)
    ident = Identity(bytes.fromhex(value("Ed25519 seed")))
    body = json.loads(blocks[0])
    entry = build(ident, seq=1, ts=1_735_689_600_000, kind="notice.post", body=body,
                  actor="ada")
    assert ident.public_key == value("Public key (`author`):")
    assert canonical(body).decode() == blocks[0]
    assert canonical(entry.header).decode() == blocks[1]
    assert entry.header["body_hash"] == value("`body_hash`:")
    assert entry.id == value("`id`:")
    assert entry.sig == value("`sig`:")


def test_escapes_follow_the_spec() -> None:
    assert canonical({"a": "\x01\n\"\\\u2028é"}) == '{"a":"\\u0001\\n\\"\\\\\u2028é"}'.encode()
