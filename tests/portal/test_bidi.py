"""Text people typed is isolated from the page's own direction (issue 18, resident item 1).

In Arabic, "£10 an hour, free for families on benefits" showed as "an hour, free for
families on £10 benefits": the price sat in the Arabic sentence without isolation.
Every user-supplied field must sit in a <bdi> or an element with dir="auto", on
every residents' page type and the organisers' lists, in every language.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.portal.conftest import Seeder

PRICE = "£10 an hour, free for families on benefits"
FIELDS = {"title": "Maths tutoring", "price": PRICE, "contact": "07700 900123 after 6pm",
          "author": "Amira Haddad", "collection": "Practical guides",
          "notice": "Water off on Elm Street", "excerpt": "Evenings and weekends"}


class _Isolation(HTMLParser):
    """Records, for each text node holding a watched value, whether it is isolated."""

    VOID = frozenset({"br", "img", "input", "meta", "link", "hr", "source", "wbr"})

    def __init__(self, watched: dict[str, str]) -> None:
        super().__init__()
        self.watched = watched
        self.stack: list[tuple[str, bool]] = []
        self.seen: dict[str, list[bool]] = {name: [] for name in watched}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        isolating = tag in ("bdi", "title", "textarea", "option") or ("dir", "auto") in attrs
        self.stack.append((tag, isolating))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        isolated = any(flag for _tag, flag in self.stack)
        for name, value in self.watched.items():
            if value in data:
                self.seen[name].append(isolated)


def _content(app: Flask) -> dict[str, str]:
    seed = Seeder(app)
    listing = seed.listing(category="services", title=FIELDS["title"], price=PRICE,
                           contact=FIELDS["contact"], body=FIELDS["excerpt"] + ", call Sam.")
    notice = seed.notice(title=FIELDS["notice"], body="Bottled water at the library.")
    item = seed.library("pdf", title="First aid", author=FIELDS["author"],
                        collection=FIELDS["collection"])
    return {"home": "/", "listings": "/listings/", "category": "/listings/services",
            "listing": f"/listing/{listing.id}", "notices": "/notices/",
            "notice": f"/notices/{notice.id}", "library": "/library/",
            "library item": f"/library/{item.id}", "search": "/search?q=tutoring",
            "search notice": "/search?q=water"}


@pytest.mark.parametrize("language", ["ar", "en"])
def test_every_user_supplied_field_is_isolated(app: Flask, client: FlaskClient,
                                               language: str) -> None:
    pages = _content(app)
    found: dict[str, int] = dict.fromkeys(FIELDS, 0)
    for name, url in pages.items():
        response = client.get(url, headers={"Accept-Language": language})
        assert response.status_code == 200, url
        parser = _Isolation(FIELDS)
        parser.feed(response.get_data(as_text=True))
        for field, flags in parser.seen.items():
            assert all(flags), f"{field} is not isolated on the {name} page ({url})"
            found[field] += len(flags)
    assert all(found.values()), f"some fields were never shown: {found}"


def test_the_organisers_lists_isolate_titles_too(app: Flask, client: FlaskClient) -> None:
    from tests.portal.conftest import ORGANISER, ORGANISER_PASSWORD, form_token

    _content(app)
    token = form_token(client, "/organisers/sign-in")
    client.post("/organisers/sign-in", data={"name": ORGANISER, "password": ORGANISER_PASSWORD,
                                             "csrf_token": token})
    for url in ("/organisers/listings/", "/organisers/notices/", "/organisers/library/"):
        parser = _Isolation({"title": FIELDS["title"], "notice": FIELDS["notice"],
                             "author": FIELDS["author"]})
        page = client.get(url, headers={"Accept-Language": "ar"})
        assert page.status_code == 200
        parser.feed(page.get_data(as_text=True))
        for field, flags in parser.seen.items():
            assert all(flags), f"{field} is not isolated on {url}"
