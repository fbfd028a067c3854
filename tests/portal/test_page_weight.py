"""Every residents' page, HTML plus CSS, stays under 50 KB with realistic content."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from node.store.models import CATEGORIES
from tests.portal.conftest import Seeder, every_page_type

BUDGET_BYTES = 50 * 1024
LONG_BODY = ("Solid oak dining table with six chairs, some wear on the legs but sturdy. "
             "Collection only from Elm Street, evenings after 6 pm. **Cash** or bank "
             "transfer. Happy to help load it into a van.\n\n") * 12


def test_every_page_type_fits_the_budget(client: FlaskClient, seed: Seeder) -> None:
    content = seed.neighbourhood()
    for i in range(24):  # full pages of long listings, in every category
        seed.listing(category=CATEGORIES[i % len(CATEGORIES)], title=f"Oak table {i} " * 4,
                     body=LONG_BODY[:4900], price="£120 or nearest offer",
                     contact="Ring 07700 900123 after 6 pm, or knock at number 14")
    for i in range(8):
        seed.notice(title=f"Road works on Elm Street, part {i}", body=LONG_BODY[:4900],
                    urgent=i < 2)
    for i in range(25):
        seed.library("pdf", title=f"Guide to the neighbourhood, volume {i}",
                     collection=f"Collection {i % 6}", description=LONG_BODY[:4900])
    content["listings"].append(seed.listing(title="Longest", body=LONG_BODY[:4999]))
    urls = every_page_type(content)
    urls["listing"] = f"/listing/{content['listings'][-1].id}"
    for lang in ("ar", "es"):
        urls[f"home ({lang})"] = "/"
    css_sizes: dict[str, int] = {}
    for name, url in urls.items():
        lang = name[-3:-1] if name.endswith(")") else "en"
        client.set_cookie("lang", lang)
        response = client.get(url)
        html = response.get_data()
        total = len(html)
        for sheet in re.findall(rb'<link rel="stylesheet" href="([^"]+)"', html):
            path = sheet.decode()
            if path not in css_sizes:
                css_sizes[path] = len(client.get(path).get_data())
            total += css_sizes[path]
        assert total < BUDGET_BYTES, f"{name} ({url}) weighs {total} bytes"
