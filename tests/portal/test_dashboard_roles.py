"""The dashboard shows the moderation queue only to those who may open it
(issue 18, organiser item 7: an organiser saw "Submissions waiting", then a 403)."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from portal.db import services
from tests.portal.auth_actions import AuthActions, app_fixture

app = app_fixture()


def _submit(app: Flask) -> None:
    with app.app_context():
        services(app).hub.submit_listing(category="free", title="Sofa", body="Collect soon.")


def test_an_organiser_sees_no_queue_they_cannot_open(app: Flask, client: FlaskClient,
                                                     auth: AuthActions) -> None:
    _submit(app)
    auth.login("olga")
    page = client.get("/organisers/").get_data(as_text=True)
    assert "Submissions waiting" not in page
    assert client.get("/organisers/moderation/").status_code == 403


def test_a_moderator_sees_the_count_and_can_open_the_queue(app: Flask, client: FlaskClient,
                                                           auth: AuthActions) -> None:
    _submit(app)
    auth.login("mo")
    page = client.get("/organisers/").get_data(as_text=True)
    link = re.search(r'<dt>Submissions waiting</dt><dd><a href="([^"]+)">1</a>', page)
    assert link
    assert client.get(link.group(1)).status_code == 200


def test_the_dashboards_figures_are_the_stores(app: Flask, client: FlaskClient,
                                               auth: AuthActions) -> None:
    """The dashboard reads its four figures apart from ``counts()`` (which also scans every
    entry): they must still be the same numbers."""
    _submit(app)
    with app.app_context():
        hub = services(app).hub
        for n in range(3):
            hub.post_listing("ada", category="free", title=f"Chair {n}", body="Sturdy.",
                             price="", contact="Flat 1")
        hub.post_notice("ada", title="Bins", body="Thursday this week.")
        counts = hub.store.counts()
        assert hub.store.recent_audit(3) == hub.store.audit(per_page=3).items
    auth.login("mo")
    page = client.get("/organisers/").get_data(as_text=True)
    shown = dict(re.findall(r"<dt>([^<]+)</dt><dd><a [^>]+>(\d+)</a>", page))
    assert shown == {"Listings showing": str(counts["listings_live"]),
                     "Notices": str(counts["notices"]),
                     "Library items": str(counts["library_items"]),
                     "Submissions waiting": str(counts["submissions_pending"])}
    assert (counts["listings_live"], counts["notices"], counts["submissions_pending"]) == (3, 1, 1)
    recent = page.split("Recent actions", 1)[1]
    assert recent.index("Bins") < recent.index("Chair 2") < recent.index("Chair 1")
