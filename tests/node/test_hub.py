"""Hub actions on listings, notices, the library and submissions: checks and effects."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.errors import NotFound, PermissionDenied, ValidationError
from node.hub import Hub
from node.identity import Identity
from node.library.zimbuild import ZimArticle, build_zim
from node.store import Store
from tests.node.test_store_blobs import PDF
from tests.node.test_store_support import T0, FakeClock, make_hub, open_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    with open_store(tmp_path / "hub.sqlite3", Identity.generate(), clock=clock) as s:
        yield s


@pytest.fixture
def hub(store: Store, clock: FakeClock) -> Hub:
    return make_hub(store, clock)


def fields_of(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return exc.value.fields


def test_post_listing_returns_it_as_shown(hub: Hub, store: Store) -> None:
    listing = hub.post_listing("olu", category="for-sale", title="  Bike  ", body="Red.",
                               price="£20", contact="flat 2", pinned=True)
    assert listing == store.listing(listing.id)
    assert (listing.title, listing.price, listing.pinned, listing.actor) == (
        "Bike", "£20", True, "olu")


def test_post_listing_reports_every_bad_field(hub: Hub) -> None:
    with pytest.raises(ValidationError) as info:
        hub.post_listing("olu", category="cars", title="", body="x" * 5001,
                         expires_at=T0 - 1)
    assert fields_of(info) == {
        "category": "choose one of: for-sale, free, wanted, services, jobs, events",
        "title": "required",
        "body": "at most 5000 characters (this has 5001)",
        "expires_at": "must be in the future",
    }


def test_title_length_limit(hub: Hub) -> None:
    with pytest.raises(ValidationError) as info:
        hub.post_listing("olu", category="free", title="t" * 121, body="b")
    assert fields_of(info)["title"].startswith("at most 120 characters")


def test_unknown_or_disabled_actor_is_refused(hub: Hub) -> None:
    with pytest.raises(PermissionDenied, match="'nobody' is not an enabled"):
        hub.post_listing("nobody", category="free", title="x", body="y")
    hub.set_disabled("ada", "olu", True)
    with pytest.raises(PermissionDenied):
        hub.post_notice("olu", title="x", body="y")


def test_edit_listing_changes_only_what_differs(hub: Hub, store: Store,
                                                clock: FakeClock) -> None:
    listing = hub.post_listing("olu", category="free", title="Sofa", body="Blue")
    clock.advance(60)
    edited = hub.edit("listing", "olu", listing.id, title="Sofa", body="Green", pinned=True)
    assert (edited.body, edited.pinned, edited.updated_at) == ("Green", True, T0 + 60)
    edit = store.entries_since({})[-1]
    assert edit["body"] == {"body": "Green", "pinned": True}
    count = len(store.entries_since({}))
    hub.edit("listing", "olu", listing.id, title="Sofa")
    assert len(store.entries_since({})) == count  # nothing changed, nothing appended


def test_edit_refuses_unknown_fields_and_missing_items(hub: Hub) -> None:
    listing = hub.post_listing("olu", category="free", title="Sofa", body="Blue")
    with pytest.raises(ValidationError) as info:
        hub.edit("listing", "olu", listing.id, created_at=0)
    assert fields_of(info) == {"created_at": "cannot be changed here"}
    with pytest.raises(NotFound):
        hub.edit("listing", "olu", "0" * 64, title="x")


def test_expire_and_delete_listing(hub: Hub, store: Store) -> None:
    listing = hub.post_listing("olu", category="free", title="Sofa", body="Blue")
    expired = hub.expire("listing", "olu", listing.id)
    assert expired.expires_at == T0 and store.listings().total == 0
    hub.edit("listing", "olu", listing.id, title="Sofa!")  # editing an expired one still works
    hub.delete("listing", "olu", listing.id)
    assert store.listing(listing.id) is None
    with pytest.raises(NotFound):
        hub.delete("listing", "olu", listing.id)


def test_notices(hub: Hub, store: Store, clock: FakeClock) -> None:
    notice = hub.post_notice("olu", title="Road closed", body="Elm St", urgent=True,
                             expires_at=T0 + 3600)
    assert store.notices() == [notice]
    assert hub.edit("notice", "olu", notice.id, urgent=False, pinned=True).pinned
    with pytest.raises(ValidationError) as info:
        hub.edit("notice", "olu", notice.id, urgent="yes")
    assert fields_of(info) == {"urgent": "must be true or false"}
    hub.expire("notice", "olu", notice.id)
    assert store.notices() == []
    hub.delete("notice", "olu", notice.id)
    assert store.notice(notice.id) is None


def test_library_upload_by_content(hub: Hub, store: Store, tmp_path: Path) -> None:
    item = hub.add_library_file("olu", io.BytesIO(PDF), filename="../Water Guide.PDF",
                                title="Water guide", language="en", collection="Health")
    assert (item.media_type, item.mime, item.filename) == ("pdf", "application/pdf",
                                                           "Water Guide.pdf")
    assert hub.blobs.path(item.sha256).read_bytes() == PDF
    assert store.collections() == [("Health", 1)]
    # A real archive: a damaged ZIM is refused (tests/node/test_library_zim.py).
    real_zim = build_zim(tmp_path / "w.zim", [ZimArticle("Home", "Home", "<p>Hi</p>")])
    zim = hub.add_library_file("olu", io.BytesIO(real_zim.read_bytes()), filename="wikipedia.pdf",
                               title="Wikipedia")
    assert (zim.media_type, zim.filename) == ("zim", "wikipedia.zim")


def test_library_refuses_wrong_type_and_keeps_nothing(hub: Hub) -> None:
    with pytest.raises(ValidationError) as info:
        hub.add_library_file("olu", io.BytesIO(b"MZ" + b"\x00" * 100), filename="a.pdf",
                             title="Not a PDF")
    assert "EXE" in fields_of(info)["file"]
    assert [p for p in hub.blobs.root.rglob("*") if p.is_file()] == []


def test_library_refuses_oversized_upload(hub: Hub) -> None:
    with pytest.raises(ValidationError) as info:
        hub.add_library_file("olu", io.BytesIO(PDF), filename="a.pdf", title="x",
                             max_bytes=10)
    assert "larger than" in fields_of(info)["file"]


def test_library_quota_refuses_what_does_not_fit_and_keeps_nothing(hub: Hub) -> None:
    hub.quota_bytes = len(PDF) + 10
    hub.add_library_file("olu", io.BytesIO(PDF), filename="a.pdf", title="First")
    bigger = PDF + b"%" + b"x" * 100 + b"\n"
    with pytest.raises(ValidationError) as info:
        hub.add_library_file("olu", io.BytesIO(bigger), filename="b.pdf", title="Second")
    assert "quota" in fields_of(info)["file"] and "room for 0.0 MiB" in fields_of(info)["file"]
    assert len([p for p in hub.blobs.root.rglob("*") if p.is_file()]) == 1
    hub.quota_bytes = len(PDF)
    with pytest.raises(ValidationError, match="quota"):
        hub.add_library_file("olu", io.BytesIO(bigger), filename="c.pdf", title="Third")


def test_library_metadata_checked_before_the_upload_is_read(hub: Hub) -> None:
    stream = io.BytesIO(PDF)
    with pytest.raises(ValidationError) as info:
        hub.add_library_file("olu", stream, filename="a.pdf", title="", language="not a tag!")
    assert set(fields_of(info)) == {"title", "language"}
    assert stream.tell() == 0


def test_library_edit_and_delete_keeps_shared_file(hub: Hub, store: Store) -> None:
    one = hub.add_library_file("olu", io.BytesIO(PDF), filename="a.pdf", title="One")
    two = hub.add_library_file("olu", io.BytesIO(PDF), filename="b.pdf", title="Two")
    assert hub.edit_library_item("olu", one.id, collection="Kids").collection == "Kids"
    hub.delete_library_item("olu", one.id)
    assert hub.blobs.has(two.sha256)
    hub.delete_library_item("olu", two.id)
    assert not hub.blobs.has(two.sha256)
    assert store.library_items().total == 0


def test_submission_approved_becomes_a_listing(hub: Hub, store: Store) -> None:
    hub.create_account("ada", name="mo", password="correct horse", role="moderator")
    sub = hub.submit_listing(category="wanted", title="Ladder", body="To borrow",
                             contact="flat 3")
    assert sub.status == "pending" and store.listings().total == 0
    with pytest.raises(PermissionDenied, match="needs the moderator role"):
        hub.decide_submission("olu", sub.id, approve=True)
    decided = hub.decide_submission("mo", sub.id, approve=True, reason="fine")
    assert (decided.status, decided.decided_by) == ("approved", "mo")
    listing = store.listing(decided.listing_id)
    assert (listing.title, listing.contact, listing.from_submission) == ("Ladder", "flat 3",
                                                                        sub.id)
    with pytest.raises(ValidationError) as info:
        hub.decide_submission("mo", sub.id, approve=False)
    assert fields_of(info) == {"submission": "already approved by mo"}


def test_submission_rejected(hub: Hub, store: Store) -> None:
    sub = hub.submit_listing(category="free", title="Spam", body="buy now")
    decided = hub.decide_submission("ada", sub.id, approve=False, reason="spam")
    assert (decided.status, decided.reason, decided.listing_id) == ("rejected", "spam", None)
    assert store.listings().total == 0


def test_submission_is_validated_like_a_listing(hub: Hub) -> None:
    with pytest.raises(ValidationError) as info:
        hub.submit_listing(category="", title="", body="")
    assert set(fields_of(info)) == {"category", "title", "body"}


def test_erased_submission_cannot_be_approved(hub: Hub, clock: FakeClock) -> None:
    sub = hub.submit_listing(category="free", title="Chair", body="old chair")
    clock.advance(31 * 86400)
    assert hub.erase_expired_submissions() == 1
    with pytest.raises(ValidationError, match="erased"):
        hub.decide_submission("ada", sub.id, approve=True)
    assert hub.decide_submission("ada", sub.id, approve=False).status == "rejected"


def test_the_hub_checks_limits_and_fields_as_the_entry_kinds_declare(hub: Hub) -> None:
    """A form's limits are the entry format's (node/store/kinds.py), not a second copy."""
    from node.store.kinds import KINDS, editable

    limit = KINDS["notice.post"].fields["title"].max_len
    assert limit is not None
    with pytest.raises(ValidationError) as too_long:
        hub.post("notice", "ada", title="x" * (limit + 1), body="Text.")
    assert set(fields_of(too_long)) == {"title"}
    assert hub.post("notice", "ada", title="x" * limit, body="Text.").title == "x" * limit
    with pytest.raises(ValidationError) as unknown:
        hub.post("notice", "ada", title="Hi", body="Text.", category="free")
    assert set(fields_of(unknown)) == {"category"}
    with pytest.raises(ValidationError) as missing:
        hub.post("listing", "ada", title="Hi", body="Text.")
    assert set(fields_of(missing)) == {"category"}
    assert set(editable("listing")) == set(KINDS["listing.post"].fields) - {"from_submission"}
