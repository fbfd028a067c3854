"""Library uploads keep the chosen file across a failed form, and the form helps
(issue 18, organiser item 5): the file is staged on the node, the form says
"File kept", staged files go after a while; the picker offers only accepted
types; the language error is plain; collections ignore letter case."""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from portal.db import services
from tests.portal.auth_actions import AuthActions, app_fixture
from tests.portal.conftest import sample_pdf

app = app_fixture("[portal]\nupload_max_mb = 1\n")
UPLOAD = "/organisers/library/upload"


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined]


def visible(page: str) -> str:
    """The page's text as read (tags such as <bdi> removed)."""
    return re.sub(r"<[^>]+>", "", page)


def upload(auth: AuthActions, content: bytes | None, filename: str = "water-guide.pdf",
           **fields: str) -> object:
    data: dict[str, object] = {"title": "Water guide", "author": "", "language": "en",
                               "description": "", "collection": ""}
    data.update(fields)
    if content is not None:
        data["file"] = (io.BytesIO(content), filename)
    return auth.post(UPLOAD, data, form_page=UPLOAD, content_type="multipart/form-data")


def staged_token(page: str) -> str:
    match = re.search(r'name="staged"[^>]*value="([0-9a-f]+)"'
                      r'|value="([0-9a-f]+)"[^>]*name="staged"', page)
    assert match, "the form carries the kept file"
    return match.group(1) or match.group(2)


def staging_dir(app: Flask) -> Path:
    return Path(app.config["NODE_CONFIG"].data_dir) / "upload-staging"


def staged_files(app: Flask) -> list[Path]:
    root = staging_dir(app)
    return sorted(root.iterdir()) if root.exists() else []


def items(app: Flask) -> list[object]:
    with app.app_context():
        return list(services(app).store.library_items().items)


def test_a_missing_title_keeps_the_file_and_the_second_try_needs_no_file(
        app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    pdf = sample_pdf()
    response = upload(auth, pdf, title="")
    page = text(response)
    assert response.status_code == 200 and 'id="title-error"' in page
    assert "File kept: water-guide.pdf" in visible(page)
    token = staged_token(page)
    assert items(app) == [] and staged_files(app), "kept on the node, not in the library"
    response = upload(auth, None, title="Water guide", staged=token)
    assert response.status_code == 302, text(response)
    (item,) = items(app)
    assert item.sha256 == hashlib.sha256(pdf).hexdigest()  # type: ignore[attr-defined]
    assert item.filename == "water-guide.pdf"  # type: ignore[attr-defined]
    assert staged_files(app) == [], "the kept file is gone once it is in the library"


def test_a_wrong_language_keeps_the_file_and_says_what_to_type(
        app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    page = text(upload(auth, sample_pdf(), language="English"))
    assert 'id="language-error"' in page
    assert "language tag" not in page
    assert "en for English" in page
    assert "File kept: water-guide.pdf" in visible(page)
    response = upload(auth, None, language="en", staged=staged_token(page))
    assert response.status_code == 302


def test_a_new_file_replaces_the_kept_one(app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    page = text(upload(auth, b"%PDF-1.4 first\n%%EOF\n", "first.pdf", title=""))
    token = staged_token(page)
    pdf = sample_pdf()
    response = upload(auth, pdf, "second.pdf", staged=token)
    assert response.status_code == 302
    (item,) = items(app)
    assert item.sha256 == hashlib.sha256(pdf).hexdigest()  # type: ignore[attr-defined]
    assert staged_files(app) == []


def test_a_refused_file_is_not_kept(app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    page = text(upload(auth, b"#!/bin/sh\necho hi\n", "notes.pdf"))
    assert 'id="file-error"' in page and "File kept" not in page
    assert staged_files(app) == []


def test_no_file_and_nothing_kept_asks_for_a_file(app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    page = text(upload(auth, None))
    assert 'id="file-error"' in page and "Choose a file to upload." in page
    page = text(upload(auth, None, staged="0" * 32))
    assert 'id="file-error"' in page and "File kept" not in page


def test_another_organiser_cannot_use_a_kept_file(app: Flask, client: FlaskClient,
                                                  auth: AuthActions) -> None:
    auth.login("olga")
    token = staged_token(text(upload(auth, sample_pdf(), title="")))
    auth.logout()
    auth.login("mo")
    page = text(upload(auth, None, staged=token))
    assert 'id="file-error"' in page and "File kept" not in page
    assert items(app) == []


def test_kept_files_are_removed_after_a_while(app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    upload(auth, sample_pdf(), title="")
    assert staged_files(app)
    long_ago = time.time() - 2 * 3600
    for path in staged_files(app):
        os.utime(path, (long_ago, long_ago))
    auth.client.get(UPLOAD)
    assert staged_files(app) == []


def test_the_file_picker_offers_only_accepted_types(auth: AuthActions) -> None:
    auth.login("olga")
    page = text(auth.client.get(UPLOAD))
    accept = re.search(r'<input[^>]*type="file"[^>]*accept="([^"]+)"'
                       r'|<input[^>]*accept="([^"]+)"[^>]*type="file"', page)
    assert accept, "the picker has accept="
    offered = (accept.group(1) or accept.group(2)).split(",")
    for wanted in (".pdf", ".epub", "audio/*", "video/*", ".zim", "image/png"):
        assert wanted in offered


def test_collections_ignore_letter_case(app: Flask) -> None:
    with app.app_context():
        hub = services(app).hub
        first = hub.add_library_file("olga", io.BytesIO(sample_pdf()), filename="a.pdf",
                                     title="A", collection="Practical guides")
        second = hub.add_library_file("olga", io.BytesIO(b"%PDF-1.4 b\n%%EOF\n"),
                                      filename="b.pdf", title="B",
                                      collection="practical  guides ")
        assert second.collection == first.collection == "Practical guides"
        assert services(app).store.collections() == [("Practical guides", 2)]


def test_sizes_are_written_one_way_for_residents_and_organisers(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    with app.app_context():
        item = services(app).hub.add_library_file("olga", io.BytesIO(sample_pdf() * 3),
                                                  filename="a.pdf", title="Guide")
        from portal.i18n import filesize
        with app.test_request_context("/"):
            expected = filesize(item.size)
    resident = text(client.get(f"/library/{item.id}"))
    auth.login("olga")
    organiser = text(client.get("/organisers/library/"))
    assert expected in resident and expected in organiser
    assert "KiB" not in organiser and "Bytes" not in organiser
