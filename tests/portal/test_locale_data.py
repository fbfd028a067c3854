"""Slim Babel locales: the same dates, numbers, sizes and names as Babel's, from a small subset."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from babel.units import format_unit
from flask import Flask

from portal import db, technicians
from portal.db import services
from portal.locale_data import UNITS, SlimLocale, slim_locales
from tests.portal.browser import every_organiser_page_type
from tests.portal.conftest import Seeder, every_page_type
from tests.portal.test_technicians import (  # noqa: F401
    ADMIN,
    TECHNICIAN,
    fake_mesh,
    portal_for,
    sign_in,
)

LANGUAGES = ("en", "ar", "es")
MOMENTS = [datetime(2026, month, day, hour, 7, 30, tzinfo=UTC)
           for month, day, hour in ((1, 1, 0), (2, 28, 9), (7, 14, 13), (11, 26, 23))]


def formatted(locale: Locale) -> list[str]:
    """Everything the portal formats, in ``locale``."""
    out = []
    for moment in MOMENTS:
        out += [format_date(moment, "medium", locale=locale),
                format_datetime(moment, "medium", locale=locale),
                format_datetime(moment, "HH:mm", locale=locale),
                format_datetime(moment, "d MMM", locale=locale),
                format_datetime(moment, "EEE d MMM HH:mm", locale=locale)]
    for number in (0, 1, 2.5, 1234.5678, 0.125):
        out += [format_decimal(number, locale=locale),
                format_decimal(number, "#,##0.0", locale=locale),
                format_percent(number, locale=locale)]
        for unit in UNITS:
            out.append(format_unit(number, unit, length="short", format="#,##0.#",
                                   locale=locale))
    out += [locale.plural_form(n) for n in (0, 1, 2, 3, 11, 100, 101)]
    out += [locale.get_display_name(), locale.text_direction]
    return out


@pytest.mark.parametrize("code", LANGUAGES)
def test_a_slim_locale_formats_exactly_like_babel(code: str) -> None:
    slim = slim_locales(LANGUAGES)[code]
    assert isinstance(slim, SlimLocale)
    assert formatted(slim) == formatted(Locale.parse(code))
    assert slim.slim.fallbacks == 0, "a key the portal formats with is missing from SLIM_KEYS"
    assert set(slim.slim["languages"]) == set(LANGUAGES)


def test_a_key_outside_the_subset_loads_the_full_data_and_is_still_right() -> None:
    bare = SlimLocale("es", {})
    assert format_date(MOMENTS[0], "long", locale=bare) == \
        format_date(MOMENTS[0], "long", locale=Locale.parse("es"))
    assert bare.slim.fallbacks > 0


def test_a_user_who_may_not_open_the_interpreter_path_still_gets_slim_locales(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    locked = tmp_path / "python3"  # not executable: as the venv under /root is for nobody
    locked.write_text("")
    monkeypatch.setattr(sys, "executable", str(locked))
    locales = slim_locales.__wrapped__(("en", "ar"))
    assert all(isinstance(locale, SlimLocale) for locale in locales.values())
    assert formatted(locales["ar"]) == formatted(Locale.parse("ar"))


def test_if_the_extraction_fails_the_portal_formats_with_full_babel_data(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise subprocess.CalledProcessError(1, "python", stderr=b"Traceback: no babel")

    monkeypatch.setattr(subprocess, "run", broken)
    locales = slim_locales.__wrapped__(("en", "ar"))
    assert {code: type(locale) for code, locale in locales.items()} == \
        {"en": Locale, "ar": Locale}
    assert "could not extract the CLDR subset" in caplog.text and "no babel" in caplog.text


def test_every_page_in_every_language_formats_from_the_subset(
        tmp_path: Path, fake_mesh: dict[str, Any]) -> None:  # noqa: F811
    app: Flask = portal_for(tmp_path, fake_mesh)
    try:
        content = Seeder(app).neighbourhood()
        content["submission"] = services(app).hub.submit_listing(
            category="wanted", title="Wanted: a ladder", body="For a **weekend**.",
            contact="Flat 7")
        client = app.test_client()
        for lang in LANGUAGES:
            client.set_cookie("lang", lang)
            for url in every_page_type(content).values():
                assert client.get(url).status_code in (200, 404), url
        signed_in = app.test_client()
        sign_in(signed_in, ADMIN)
        technician = app.test_client()
        sign_in(technician, TECHNICIAN)
        library = fake_mesh["nodes"][0]
        for lang in LANGUAGES:
            signed_in.set_cookie("lang", lang)
            for url in every_organiser_page_type(content).values():
                assert signed_in.get(url).status_code in (200, 404), url
            technician.set_cookie("lang", lang)
            for url in ("/technicians/", f"/technicians/nodes/{library.target}",
                        f"/technicians/nodes/{library.target}?period=week",
                        "/technicians/map"):
                assert technician.get(url).status_code == 200, url
        locales = app.config["MESHHUB_LOCALES"]
        assert all(isinstance(locales[code], SlimLocale) for code in LANGUAGES)
        fell_back = {code: locales[code].slim.fallbacks for code in LANGUAGES}
        assert fell_back == dict.fromkeys(LANGUAGES, 0), \
            "a page needed CLDR data outside portal.locale_data.SLIM_KEYS"
    finally:
        technicians.close(app)
        db.close(app)
