"""Dates as people say them, the exact time at hand (issue 18, resident item 5):
every item showed the same absolute date, and notices showed "12:00:44 AM"."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import pytz
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale

from portal.relative import ago, days_between
from tests.portal.conftest import Seeder

LONDON = pytz.timezone("Europe/London")
NOW = LONDON.localize(datetime(2026, 6, 10, 9, 30)).timestamp()


def at(day: int, hour: int = 12, minute: int = 0) -> int:
    return int(LONDON.localize(datetime(2026, 6, day, hour, minute)).timestamp())


def test_calendar_days_count_in_the_nodes_time_zone() -> None:
    assert days_between(at(10, 0, 5), NOW, LONDON) == 0
    assert days_between(at(9, 23, 50), NOW, LONDON) == -1, "late last night is yesterday"
    assert days_between(at(13), NOW, LONDON) == 3


@pytest.mark.parametrize(("stamp", "english", "spanish"), [
    (at(10, 8), "today", "hoy"), (at(9, 23, 59), "yesterday", "ayer"),
    (at(7), "3 days ago", "hace 3 días"), (at(11), "tomorrow", "mañana"),
    (at(12), "in 2 days", "dentro de 2 días"), (at(1), "9 days ago", "hace 9 días"),
])
def test_relative_words_in_two_languages(app: Flask, stamp: int, english: str,
                                         spanish: str) -> None:
    app.config["BABEL_DEFAULT_TIMEZONE"] = "Europe/London"
    with app.test_request_context("/"):
        with force_locale("en"):
            assert ago(stamp, NOW) == english
        with force_locale("es"):
            assert ago(stamp, NOW) == spanish


def test_far_dates_are_written_out(app: Flask) -> None:
    app.config["BABEL_DEFAULT_TIMEZONE"] = "Europe/London"
    with app.test_request_context("/"), force_locale("en"):
        assert ago(int(LONDON.localize(datetime(2026, 3, 1, 12)).timestamp()), NOW) == "Mar 1, 2026"


def test_cards_and_pages_say_today_with_the_exact_time_in_the_title(
        client: FlaskClient, seed: Seeder) -> None:
    listing = seed.listing(title="Ladder to lend")
    notice = seed.notice(title="Quiz night")
    time_tag = re.compile(r'<time datetime="[^"]+" title="([^"]+)">today</time>')
    for url in ("/", "/listings/", f"/listing/{listing.id}", "/notices/",
                f"/notices/{notice.id}"):
        page = client.get(url).get_data(as_text=True)
        exact = time_tag.search(page)
        assert exact, url
        assert re.fullmatch(r"\w{3} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s?[AP]M", exact.group(1)), \
            f"date and time to the minute, no seconds: {exact.group(1)!r}"


def test_a_notices_times_have_no_seconds(client: FlaskClient, seed: Seeder) -> None:
    notice = seed.notice(title="Quiz night", expires_at=int(datetime.now().timestamp()) + 7200)
    page = client.get(f"/notices/{notice.id}").get_data(as_text=True)
    assert "Until " in page
    assert not re.search(r"\d{1,2}:\d{2}:\d{2}", re.sub(r'datetime="[^"]*"', "", page))
