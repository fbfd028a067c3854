"""Body and header rules per kind, as applied on creation and on ingest."""

from __future__ import annotations

from typing import Any

import pytest

from node.store.kinds import KINDS, body_problems, header_problems

H = "a" * 64


@pytest.mark.parametrize(("kind", "body", "problem"), [
    ("listing.post", {"title": "x", "body": ""}, "field category: missing"),
    ("listing.post", {"category": "cars", "title": "x", "body": ""},
     "field category: must be one of for-sale, free"),
    ("listing.post", {"category": "free", "title": "", "body": ""}, "field title: empty"),
    ("listing.post", {"category": "free", "title": "x" * 121, "body": ""},
     "field title: longer than 120"),
    ("listing.post", {"category": "free", "title": "x", "body": "b" * 5001},
     "field body: longer than 5000"),
    ("listing.post", {"category": "free", "title": "x", "body": "", "pinned": 1},
     "field pinned: wrong type int"),
    ("listing.post", {"category": "free", "title": "x", "body": "", "expires_at": True},
     "field expires_at: wrong type bool"),
    ("listing.post", {"category": "free", "title": "x", "body": "", "colour": "red"},
     "field colour: unknown for listing.post"),
    ("listing.edit", {}, "an edit must change at least one field"),
    ("notice.post", {"title": "x"}, "field body: missing"),
    ("library.add", {"title": "x", "media_type": "pdf", "mime": "application/pdf",
                     "sha256": "XYZ", "size": 1, "filename": "a.pdf"},
     "field sha256: must be 64 lower-case hex"),
    ("library.add", {"title": "x", "media_type": "pdf", "mime": "application/pdf",
                     "sha256": H, "size": 1, "filename": "../etc/passwd"},
     "field filename: must be a plain file name"),
    ("library.add", {"title": "x", "media_type": "exe", "mime": "a", "sha256": H, "size": 1,
                     "filename": "a"}, "field media_type: must be one of"),
    ("account.create", {"name": "Ada Lovelace", "role": "admin", "password_hash": "$argon2id$x"},
     "field name: must be 2-32 lower-case"),
    ("account.create", {"name": "ada", "role": "king", "password_hash": "$argon2id$x"},
     "field role: must be one of technician, organiser, moderator, admin"),
    ("account.create", {"name": "ada", "role": "admin", "password_hash": "plain"},
     "field password_hash: must be an Argon2"),
    ("account.update", {"name": "ada"}, "an edit must change at least one field"),
    ("submission.decide", {"reason": "spam"}, "field approve: missing"),
    # An expiry has bounds: 0 or a count of days is a mistake; beyond 9999 no date shows it.
    ("notice.post", {"title": "x", "body": "", "expires_at": 0},
     "field expires_at: must be Unix seconds from 946684800 (2000-01-01)"),
    ("notice.edit", {"expires_at": 30}, "field expires_at: must be Unix seconds from"),
    ("listing.edit", {"expires_at": -1}, "field expires_at: must be Unix seconds from"),
    ("notice.post", {"title": "x", "body": "", "expires_at": 253_402_300_800},
     "field expires_at: must be Unix seconds from"),
])
def test_body_problems_are_specific(kind: str, body: dict[str, Any], problem: str) -> None:
    problems = body_problems(KINDS[kind], body)
    assert any(p.startswith(problem) or problem in p for p in problems), problems


@pytest.mark.parametrize(("kind", "body"), [
    ("listing.post", {"category": "jobs", "title": "Gardener", "body": "", "price": "£10/h",
                      "expires_at": None, "pinned": True, "from_submission": H}),
    ("listing.edit", {"pinned": False}),
    ("notice.edit", {"expires_at": 1_800_000_000}),
    ("notice.edit", {"expires_at": 946_684_800}),
    ("notice.edit", {"expires_at": 253_402_300_799}),
    ("library.edit", {"collection": "Health"}),
    ("listing.delete", {}),
    ("account.update", {"name": "ada", "disabled": True}),
    ("submission.create", {"category": "wanted", "title": "Ladder", "body": "to borrow"}),
])
def test_valid_bodies_pass(kind: str, body: dict[str, Any]) -> None:
    assert body_problems(KINDS[kind], body) == []


def test_body_must_be_an_object() -> None:
    assert body_problems(KINDS["notice.post"], ["x"]) == ["body: must be an object"]


def test_header_rules_for_target_and_actor() -> None:
    assert header_problems(KINDS["listing.edit"], "ada", None) == [
        "field target: required for listing.edit"]
    assert header_problems(KINDS["listing.post"], "ada", H) == [
        "field target: must be null for listing.post"]
    assert header_problems(KINDS["submission.create"], "ada", None) == [
        "field actor: must be null for submission.create"]
    assert header_problems(KINDS["account.create"], None, None) == []


@pytest.mark.parametrize("actor", ["a", "Ada", "ada lovelace", "ada\n", "-ada", "a" * 33, "ädа"])
def test_actor_is_an_account_name_on_build_and_on_ingest(actor: str) -> None:
    """The header's ``actor`` has the account names' character set (docs/entry-format.md §3):
    a name no account can have is refused whoever signed it."""
    from node.errors import EntryRejected
    from node.identity import Identity
    from node.store.entries import build, parse_wire

    author = Identity.generate()
    with pytest.raises(EntryRejected, match="malformed field actor: must be an account name"):
        build(author, seq=1, ts=1, kind="notice.post", body={"title": "x", "body": ""},
              actor=actor)
    good = build(author, seq=1, ts=1, kind="notice.post", body={"title": "x", "body": ""},
                 actor="ada")
    # The same entry re-signed by its author with the odd actor: refused on ingest too.
    from node.store.entries import entry_id, signing_message

    header = {**good.header, "actor": actor}
    wire = {"id": entry_id(header), "header": header,
            "sig": author.sign(signing_message(header)), "body": good.body}
    with pytest.raises(EntryRejected, match="malformed field actor"):
        parse_wire(wire, None)  # refused on its header, before any trust question
