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
])
def test_body_problems_are_specific(kind: str, body: dict[str, Any], problem: str) -> None:
    problems = body_problems(KINDS[kind], body)
    assert any(p.startswith(problem) or problem in p for p in problems), problems


@pytest.mark.parametrize(("kind", "body"), [
    ("listing.post", {"category": "jobs", "title": "Gardener", "body": "", "price": "£10/h",
                      "expires_at": None, "pinned": True, "from_submission": H}),
    ("listing.edit", {"pinned": False}),
    ("notice.edit", {"expires_at": 1_800_000_000}),
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
