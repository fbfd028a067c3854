"""Search answers kept until the content changes (portal/searchcache.py), for every reader.

Residents who opened the welcome page carry a session cookie, which the page cache
passes by; these tests search as such a resident. Each checks what the resident
sees after a change: a new item, another process's post, an expiry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from node.hub import open_hub
from node.store.store import Store
from portal import db
from tests.node.test_store_support import FakeClock, cheap_hasher
from tests.portal.conftest import ORGANISER, Seeder, make_app, write_node_toml


def resident(app: Flask) -> FlaskClient:
    """A phone that opened the welcome page: it holds a session cookie."""
    client = app.test_client()
    client.get("/welcome")
    assert client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session")) is not None
    return client


def count_searches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full-text count the store runs, by query."""
    runs: list[str] = []
    original = Store.search_count

    def counted(self: Store, q: str) -> int:
        runs.append(q)
        return original(self, q)

    monkeypatch.setattr(Store, "search_count", counted)
    return runs


def test_a_repeated_search_runs_once_until_an_item_arrives(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    seeder = Seeder(app)
    seeder.listing(title="Ladder to lend")
    runs = count_searches(monkeypatch)
    phones = [resident(app), resident(app)]
    pages = [phone.get("/search?q=ladder").get_data(as_text=True) for phone in phones]
    assert "Ladder to lend" in pages[0] and "Ladder to lend" in pages[1]
    assert runs == ["ladder"]
    seeder.listing(title="Ladder, tall, for a week")
    again = phones[0].get("/search?q=ladder").get_data(as_text=True)
    assert "Ladder, tall, for a week" in again and runs == ["ladder", "ladder"]
    phones[1].get("/search?q=ladder&page=1")
    phones[1].get("/search?q=lamp")
    assert runs == ["ladder", "ladder", "lamp"]


def test_another_process_posting_shows_in_the_next_search(tmp_path: Path) -> None:
    config = write_node_toml(tmp_path)
    app = make_app(config)
    try:
        Seeder(app).notice(title="Water off on Tuesday")
        phone = resident(app)
        assert "Water back on" not in phone.get("/search?q=water").get_data(as_text=True)
        store, hub = open_hub(config, password_hasher=cheap_hasher())
        try:
            hub.post_notice(ORGANISER, title="Water back on", body="Fixed.")
        finally:
            store.close()
        assert "Water back on" in phone.get("/search?q=water").get_data(as_text=True)
    finally:
        db.close(app)


def test_an_expired_listing_leaves_the_results_without_any_write(tmp_path: Path) -> None:
    clock = FakeClock()
    app = make_app(write_node_toml(tmp_path), HUB_CLOCK=clock)
    try:
        Seeder(app).listing(title="Ladder to lend", expires_at=int(clock.now) + 60)
        phone = resident(app)
        assert "Ladder to lend" in phone.get("/search?q=ladder").get_data(as_text=True)
        assert "Ladder to lend" in phone.get("/search?q=ladder").get_data(as_text=True)
        clock.advance(61)
        assert "Ladder to lend" not in phone.get("/search?q=ladder").get_data(as_text=True)
    finally:
        db.close(app)
