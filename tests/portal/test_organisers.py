"""Organisers' actions end to end: each one through the web form, then checked
where residents (and the audit) see it. CSRF stays on throughout."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from node.store.models import Listing
from portal.db import services
from tests.portal.auth_actions import AuthActions, app_fixture

PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
XSS = '<script>alert("x")</script> & <b>bold</b>'


app = app_fixture("[portal]\nupload_max_mb = 1\n")


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined]


def only_listing(app: Flask) -> Listing:
    with app.app_context():
        items = services(app).store.listings(now=0).items
    assert len(items) == 1
    return items[0]


def post_listing(auth: AuthActions, **fields: str) -> object:
    data = {"category": "free", "title": "Garden chairs", "body": "Four chairs, *sturdy*.",
            "price": "", "contact": "Flat 3", "expires_at": ""}
    data.update(fields)
    return auth.post("/organisers/listings/new", data, form_page="/organisers/listings/new")


# --- listings -------------------------------------------------------------------

def test_post_a_listing_and_residents_see_it(app: Flask, client: FlaskClient,
                                             auth: AuthActions) -> None:
    auth.login("olga")
    response = post_listing(auth, pinned="y")
    assert response.status_code == 302
    listing = only_listing(app)
    assert listing.pinned and listing.actor == "olga"
    assert "Listing published." in text(client.get("/organisers/listings/"))
    assert "Garden chairs" in text(client.get("/listings/"))
    page = text(client.get(f"/listing/{listing.id}"))
    assert "<em>sturdy</em>" in page, "the body is Markdown"


def test_form_errors_are_shown_next_to_the_field_and_keep_the_input(
        app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    response = post_listing(auth, title="", body="What I typed stays here")
    page = text(response)
    assert response.status_code == 200
    assert 'id="title-error"' in page
    assert re.search(r'<input[^>]*aria-describedby="title-error"[^>]*aria-invalid="true"'
                     r'|<input[^>]*aria-invalid="true"[^>]*aria-describedby="title-error"', page)
    assert 'href="#title"' in page, "the error summary links to the field"
    assert "What I typed stays here" in page
    with app.app_context():
        assert services(app).store.listings(now=0).total == 0


def test_a_past_expiry_is_refused_next_to_the_expiry_field(auth: AuthActions) -> None:
    auth.login("olga")
    page = text(post_listing(auth, expires_at="2001-01-01T10:00"))
    assert 'id="expires_at-error"' in page and "must be in the future" in page


def test_edit_is_prefilled_and_changes_what_residents_see(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.login("olga")
    later = (datetime.now() + timedelta(days=3)).replace(second=0, microsecond=0)
    post_listing(auth, expires_at=later.strftime("%Y-%m-%dT%H:%M"))
    listing = only_listing(app)
    edit_url = f"/organisers/listings/{listing.id}/edit"
    form = text(client.get(edit_url))
    assert 'value="Garden chairs"' in form and "Four chairs, *sturdy*." in form
    assert f'value="{later.strftime("%Y-%m-%dT%H:%M")}"' in form, "expiry prefilled"
    response = auth.post(edit_url, {"category": "free", "title": "Garden chairs and a table",
                                    "body": listing.body, "contact": "Flat 3",
                                    "expires_at": later.strftime("%Y-%m-%dT%H:%M")},
                         form_page=edit_url)
    assert response.status_code == 302
    assert "Garden chairs and a table" in text(client.get(f"/listing/{listing.id}"))
    assert only_listing(app).expires_at == int(later.timestamp())


def test_expire_pin_unpin_and_delete(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.login("olga")
    post_listing(auth)
    listing_id = only_listing(app).id
    base = f"/organisers/listings/{listing_id}"
    assert auth.post(f"{base}/pin", {"pinned": "1"}).status_code == 302
    assert only_listing(app).pinned
    assert auth.post(f"{base}/pin", {"pinned": "0"}).status_code == 302
    assert not only_listing(app).pinned
    assert auth.post(f"{base}/expire").status_code == 302
    assert "Garden chairs" not in text(client.get("/listings/")), "expired: hidden"
    assert "Expired" in text(client.get("/organisers/listings/")), "organisers still see it"
    confirm = client.get(f"{base}/delete")
    assert confirm.status_code == 200 and "Delete for good" in text(confirm)
    assert only_listing(app).id == listing_id, "asking does not delete"
    assert auth.post(f"{base}/delete", form_page=f"{base}/delete").status_code == 302
    assert client.get(f"/listing/{listing_id}").status_code == 404
    assert client.get(f"{base}/edit").status_code == 404


def test_organiser_text_is_escaped_everywhere(app: Flask, client: FlaskClient,
                                              auth: AuthActions) -> None:
    auth.login("olga")
    post_listing(auth, title=XSS, body=XSS, contact=XSS)
    listing_id = only_listing(app).id
    for url in ("/listings/", f"/listing/{listing_id}", "/organisers/listings/",
                "/organisers/", "/organisers/audit/", f"/organisers/listings/{listing_id}/edit"):
        page = text(client.get(url))
        assert "<script>alert" not in page, url
    assert "&lt;script&gt;" in text(client.get("/organisers/listings/"))


# --- notices --------------------------------------------------------------------

def test_post_an_urgent_notice_edit_and_expire_it(app: Flask, client: FlaskClient,
                                                  auth: AuthActions) -> None:
    auth.login("olga")
    response = auth.post("/organisers/notices/new", {
        "title": "Water off on Elm Street", "body": "From 9:00 to 13:00.", "urgent": "y"},
        form_page="/organisers/notices/new")
    assert response.status_code == 302
    with app.app_context():
        (notice,) = services(app).store.notices()
    assert notice.urgent and notice.actor == "olga"
    assert "Water off on Elm Street" in text(client.get("/notices/"))
    edit_url = f"/organisers/notices/{notice.id}/edit"
    assert 'checked' in text(client.get(edit_url)), "urgent box prefilled"
    auth.post(edit_url, {"title": "Water back on", "body": notice.body, "urgent": "y"},
              form_page=edit_url)
    assert "Water back on" in text(client.get(f"/notices/{notice.id}"))
    auth.post(f"/organisers/notices/{notice.id}/expire")
    assert "Water back on" not in text(client.get("/notices/"))


# --- library --------------------------------------------------------------------

def upload(auth: AuthActions, content: bytes, filename: str, **meta: str) -> object:
    data: dict[str, object] = {"title": "Water guide", "author": "", "language": "en",
                               "description": "", "collection": "Health"}
    data.update(meta)
    data["file"] = (io.BytesIO(content), filename)
    return auth.post("/organisers/library/upload", data, form_page="/organisers/library/upload",
                     content_type="multipart/form-data")


def library_files(app: Flask) -> list[Path]:
    root = Path(app.config["NODE_CONFIG"].data_dir) / "library"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_is_stored_by_hash_whatever_its_name(app: Flask, client: FlaskClient,
                                                    auth: AuthActions, tmp_path: Path) -> None:
    auth.login("olga")
    response = upload(auth, PDF, "../../etc/passwd.pdf")
    assert response.status_code == 302, text(response)
    with app.app_context():
        (item,) = services(app).store.library_items().items
    assert item.media_type == "pdf" and item.sha256 == hashlib.sha256(PDF).hexdigest()
    assert "/" not in item.filename and not item.filename.startswith(".")
    files = library_files(app)
    assert len(files) == 1 and item.sha256 in str(files[0]), "named by its SHA-256"
    library_root = (Path(app.config["NODE_CONFIG"].data_dir) / "library").resolve()
    assert files[0].resolve().is_relative_to(library_root)
    assert not (tmp_path / "etc").exists()
    assert "Water guide" in text(client.get(f"/library/{item.id}"))
    download = client.get(f"/library/{item.id}/download")
    assert download.data == PDF


def test_upload_of_a_wrong_type_names_the_accepted_types_and_stores_nothing(
        app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    response = upload(auth, b"#!/bin/sh\necho not a document\n", "notes.pdf")
    page = text(response)
    assert response.status_code == 200
    assert 'id="file-error"' in page and "the library accepts PDF, EPUB" in page
    with app.app_context():
        assert services(app).store.library_items().total == 0
    assert library_files(app) == []


def test_upload_over_the_size_limit_gets_a_friendly_413(app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    response = upload(auth, PDF + b"0" * (1024 * 1024), "big.pdf")  # upload_max_mb = 1
    assert response.status_code == 413
    assert "File too large" in text(response) and "1 MiB" in text(response)
    with app.app_context():
        assert services(app).store.library_items().total == 0
    assert library_files(app) == []


def test_edit_and_delete_a_library_item(app: Flask, client: FlaskClient,
                                        auth: AuthActions) -> None:
    auth.login("olga")
    upload(auth, PDF, "guide.pdf")
    with app.app_context():
        (item,) = services(app).store.library_items().items
    edit_url = f"/organisers/library/{item.id}/edit"
    assert 'value="Water guide"' in text(client.get(edit_url))
    auth.post(edit_url, {"title": "Clean water guide", "author": "Council", "language": "en",
                         "description": "", "collection": "Health"}, form_page=edit_url)
    assert "Clean water guide" in text(client.get(f"/library/{item.id}"))
    delete_url = f"/organisers/library/{item.id}/delete"
    assert auth.post(delete_url, form_page=delete_url).status_code == 302
    assert client.get(f"/library/{item.id}").status_code == 404
    assert library_files(app) == [], "the file goes when no item uses it"


# --- moderation -----------------------------------------------------------------

def submit(app: Flask, title: str) -> str:
    with app.app_context():
        return services(app).hub.submit_listing(category="wanted", title=title,
                                                body="A resident asks.").id


def test_organisers_cannot_moderate(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    submission_id = submit(app, "Looking for a ladder")
    auth.login("olga")
    assert client.get("/organisers/moderation/").status_code == 403
    assert client.get(f"/organisers/moderation/{submission_id}").status_code == 403
    response = auth.post(f"/organisers/moderation/{submission_id}/approve")
    assert response.status_code == 403
    with app.app_context():
        assert services(app).store.submission(submission_id).status == "pending"


def test_approve_publishes_and_reject_keeps_the_reason(app: Flask, client: FlaskClient,
                                                       auth: AuthActions) -> None:
    ladder, spam = submit(app, "Looking for a ladder"), submit(app, "Cheap pills")
    auth.login("mo")
    queue = text(client.get("/organisers/moderation/"))
    assert "Looking for a ladder" in queue and "Cheap pills" in queue
    assert "Looking for a ladder" in text(client.get("/organisers/")), "dashboard shows it"
    page_url = f"/organisers/moderation/{ladder}"
    assert auth.post(f"{page_url}/approve", form_page=page_url).status_code == 302
    assert "Looking for a ladder" in text(client.get("/listings/"))
    page_url = f"/organisers/moderation/{spam}"
    response = auth.post(f"{page_url}/reject", {"reason": "Advertising, not neighbourly"},
                         form_page=page_url)
    assert response.status_code == 302
    with app.app_context():
        assert [x.title for x in services(app).store.listings().items] == ["Looking for a ladder"]
    with app.app_context():
        assert services(app).store.submission(spam).reason == "Advertising, not neighbourly"
    assert "Advertising, not neighbourly" in text(client.get("/organisers/audit/"))
    assert "Nothing is waiting." in text(client.get("/organisers/moderation/"))


# --- audit ----------------------------------------------------------------------

def test_audit_shows_who_did_what_with_links_to_what_still_exists(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.login("olga")
    post_listing(auth, title="Kept listing")
    post_listing(auth, title="Gone listing")
    with app.app_context():
        items = {i.title: i.id for i in services(app).store.listings().items}
    auth.post(f"/organisers/listings/{items['Gone listing']}/delete")
    page = text(client.get("/organisers/audit/"))
    assert "olga" in page and "posted a listing" in page and "deleted a listing" in page
    assert f'href="/organisers/listings/{items["Kept listing"]}/edit"' in page
    assert f'/organisers/listings/{items["Gone listing"]}/edit' not in page
    assert client.get("/organisers/audit/?page=abc").status_code == 404


# --- accounts -------------------------------------------------------------------

def test_only_admins_manage_accounts(client: FlaskClient, auth: AuthActions) -> None:
    for name in ("olga", "mo"):
        auth.login(name)
        assert client.get("/organisers/accounts/").status_code == 403
        response = auth.post("/organisers/accounts/", {
            "name": "mallory", "role": "admin", "password": "let-me-in-please"})
        assert response.status_code == 403
        assert auth.post("/organisers/accounts/olga/disabled", {"disabled": "1"}
                         ).status_code == 403
        auth.logout()
    assert auth.login("mallory", "let-me-in-please").status_code == 200, "never created"


def test_admin_creates_changes_disables_and_enables_an_account(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.login("ada")
    response = auth.post("/organisers/accounts/", {
        "name": "lib", "display_name": "The library", "role": "organiser",
        "password": "books-for-everyone"}, form_page="/organisers/accounts/")
    assert response.status_code == 302
    assert "The library" in text(client.get("/organisers/accounts/"))
    page = "/organisers/accounts/"
    auth.post("/organisers/accounts/lib/role", {"role-lib-role": "moderator"}, form_page=page)
    auth.post("/organisers/accounts/lib/disabled", {"disabled": "1"}, form_page=page)
    with app.app_context():
        account = services(app).store.account("lib")
    assert account.role == "moderator" and account.disabled
    other = AuthActions(app.test_client())
    assert other.login("lib", "books-for-everyone").status_code == 200, "disabled"
    auth.post("/organisers/accounts/lib/disabled", {"disabled": "0"}, form_page=page)
    assert other.login("lib", "books-for-everyone").status_code == 302
    assert other.client.get("/organisers/moderation/").status_code == 200


def test_account_form_errors_come_from_the_hub(auth: AuthActions) -> None:
    auth.login("ada")
    response = auth.post("/organisers/accounts/", {
        "name": "Bad Name!", "role": "organiser", "password": "short"},
        form_page="/organisers/accounts/")
    page = text(response)
    assert 'id="name-error"' in page and 'id="password-error"' in page


def test_change_own_password(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.login("olga")
    url = "/organisers/password"
    wrong = auth.post(url, {"current_password": "not-it", "new_password": "new-passphrase-1",
                            "confirm": "new-passphrase-1"}, form_page=url)
    assert "That is not your current password." in text(wrong)
    differ = auth.post(url, {"current_password": "olga-password-1",
                             "new_password": "new-passphrase-1", "confirm": "other-one-22"},
                       form_page=url)
    assert "The two new passwords differ." in text(differ)
    done = auth.post(url, {"current_password": "olga-password-1",
                           "new_password": "new-passphrase-1", "confirm": "new-passphrase-1"},
                     form_page=url)
    assert done.status_code == 302
    auth.logout()
    assert auth.login("olga").status_code == 200, "the old password no longer works"
    assert auth.login("olga", "new-passphrase-1").status_code == 302


def test_notices_list_is_paged_so_it_stays_small(app: Flask, client: FlaskClient,
                                                 auth: AuthActions) -> None:
    with app.app_context():
        hub = services(app).hub
        for number in range(25):
            hub.post_notice("ada", title=f"Notice number {number:02d}", body="Text.")
    auth.login("ada")
    first = text(client.get("/organisers/notices/"))
    second = text(client.get("/organisers/notices/?page=2"))
    on_first = set(re.findall(r"Notice number \d\d", first))
    on_second = set(re.findall(r"Notice number \d\d", second))
    assert len(on_first) == 20 and len(on_second) == 5
    assert on_first.isdisjoint(on_second)
    assert client.get("/organisers/notices/?page=9").status_code == 404
