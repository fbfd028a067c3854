"""Every organisers' page, HTML plus CSS, stays under 50 KB with a busy hub behind it.

Signed in as an admin (who sees every menu entry and every action), with full
pages of long listings, notices, library items, accounts, submissions waiting
and decided, and a full page of audit — the heaviest each page gets in use.
"""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from node.store.models import CATEGORIES
from portal.db import services
from tests.portal.browser import every_organiser_page_type, seed_for_organisers
from tests.portal.conftest import ORGANISER, ORGANISER_PASSWORD, Seeder, form_token

BUDGET_BYTES = 50 * 1024
LONG_BODY = ("Solid oak dining table with six chairs, some wear on the legs but sturdy. "
             "Collection only from Elm Street, evenings after 6 pm. **Cash** or bank "
             "transfer. Happy to help load it into a van.\n\n") * 12
LONG_TITLE = "Road works on Elm Street and Station Road: buses diverted"


def busy_hub(seed: Seeder) -> dict:
    """A hub with every list an organiser sees filled to a realistic worst case."""
    content = seed_for_organisers(seed.app)
    hub = seed.hub
    for i in range(24):
        seed.listing(category=CATEGORIES[i % len(CATEGORIES)], title=f"{LONG_TITLE} {i}",
                     body=LONG_BODY[:4900], price="£120 or nearest offer",
                     contact="Ring 07700 900123 after 6 pm, or knock at number 14")
    for i in range(17):  # notices are listed on one page, expired ones too
        seed.notice(title=f"{LONG_TITLE}, part {i}", body=LONG_BODY[:4900], urgent=i < 2,
                    pinned=i % 5 == 0, expires_at=None)
    for i in range(24):
        seed.library("pdf", title=f"Guide to the neighbourhood, volume {i}",
                     author="Elm Street Residents' Association",
                     collection=f"Collection {i % 6}", description=LONG_BODY[:4900])
    for i in range(24):
        hub.create_account(ORGANISER, name=f"organiser-{i:02d}", password="a long passphrase",
                           role=("organiser", "moderator", "admin")[i % 3],
                           display_name=f"Food bank volunteer number {i}")
    waiting = [hub.submit_listing(category="wanted", title=f"{LONG_TITLE} {i}",
                                  body=LONG_BODY[:4900], contact="Flat 7")
               for i in range(40)]
    for i, submission in enumerate(waiting[20:]):
        hub.decide_submission(ORGANISER, submission.id, approve=i % 2 == 0,
                              reason="Please post it as a resident of Elm Street, "
                                     "with a way to reach you." * (i % 2))
    content["listings"].insert(0, seed.listing(title=LONG_TITLE, body=LONG_BODY[:4999]))
    content["notices"].insert(0, seed.notice(title=LONG_TITLE, body=LONG_BODY[:4999]))
    return content


def weigh(client: FlaskClient, url: str, css_sizes: dict[str, int]) -> int:
    """Bytes of the page at ``url`` plus its stylesheets (each fetched once)."""
    response = client.get(url)
    assert response.status_code in (200, 404), f"{url}: {response.status_code}"
    html = response.get_data()
    total = len(html)
    for sheet in re.findall(rb'<link rel="stylesheet" href="([^"]+)"', html):
        path = sheet.decode()
        if path not in css_sizes:
            css_sizes[path] = len(client.get(path).get_data())
        total += css_sizes[path]
    return total


def test_every_organisers_page_type_fits_the_budget(client: FlaskClient, seed: Seeder) -> None:
    content = busy_hub(seed)
    with seed.app.app_context():
        assert services(seed.app).store.counts()["submissions_pending"] == 21
    css_sizes: dict[str, int] = {}
    assert weigh(client, "/organisers/sign-in", css_sizes) < BUDGET_BYTES
    token = form_token(client, "/organisers/sign-in")
    signed_in = client.post("/organisers/sign-in", data={
        "name": ORGANISER, "password": ORGANISER_PASSWORD, "csrf_token": token})
    assert signed_in.status_code == 302

    urls = every_organiser_page_type(content)
    urls["dashboard (ar)"] = urls["dashboard"]
    urls["notices (es)"] = urls["notices"]
    weights: dict[str, int] = {}
    for name, url in urls.items():
        client.set_cookie("lang", name[-3:-1] if name.endswith(")") else "en")
        weights[name] = weigh(client, url, css_sizes)
    # A form sent back with errors carries what was typed, and the messages.
    client.set_cookie("lang", "en")
    new_listing = urls["new listing"]
    response = client.post(new_listing, data={
        "csrf_token": form_token(client, new_listing), "category": "free", "title": "",
        "body": LONG_BODY[:4999], "price": "x" * 200, "contact": "y" * 300})
    assert response.status_code == 200 and b"error-summary" in response.get_data()
    weights["new listing with errors"] = len(response.get_data()) + sum(css_sizes.values())

    heavy = {name: size for name, size in weights.items() if size >= BUDGET_BYTES}
    assert not heavy, f"over {BUDGET_BYTES} bytes: {heavy}"
