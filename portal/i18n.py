"""Interface languages: Flask-Babel set-up, the reader's choice, and the menu.

The reader's language comes from the ``lang`` cookie (set only when they pick
one from the menu; the only thing the portal stores about a resident), else
the browser's ``Accept-Language`` among ``portal.languages``, else
``portal.default_language``.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytz
from babel import Locale
from babel.units import format_unit
from flask import Blueprint, Flask, abort, current_app, redirect, request
from flask_babel import Babel, format_date, format_datetime, get_locale, get_translations
from werkzeug.wrappers import Response

from node.messages import Message
from portal.locale_data import slim_locales
from portal.relative import ago

LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
#: Scripts written right to left, by language code.
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ps", "ur", "ckb", "dv", "yi"})
TRANSLATIONS_DIR = Path(__file__).parent / "translations"

#: Flask config key: the offered languages, read from node.toml once (every page asks).
_OFFERED_KEY = "MESHHUB_LANGUAGES"
#: Flask config key: code -> the Babel locale to format with (portal.locale_data).
_LOCALES_KEY = "MESHHUB_LOCALES"

bp = Blueprint("i18n", __name__)


def offered_languages() -> list[str]:
    """The interface languages this node offers, in menu order."""
    offered = current_app.config.get(_OFFERED_KEY)
    if offered is None:  # an app set up without init_app (unit tests)
        return list(current_app.config["NODE_CONFIG"].portal.languages)
    return list(offered)


def select_locale() -> str | Locale:
    """The language for this request (cookie, then Accept-Language, then default).

    Returned as the app's slim Babel locale for that language where it has one
    (see :mod:`portal.locale_data`), so formatting never loads full CLDR data.
    """
    offered = offered_languages()
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen not in offered:
        chosen = negotiate(request.headers.get("Accept-Language", ""), offered,
                           current_app.config["NODE_CONFIG"].portal.default_language)
    return _slim_locale(chosen) or chosen


#: A quality value as RFC 9110 writes it ("1", "0.8", "1.000"); anything else voids its item.
_QUALITY = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")


def negotiate(header: str, offered: list[str] | tuple[str, ...], default: str) -> str:
    """The offered language an ``Accept-Language`` header asks for, else ``default``.

    The items are taken by quality, highest first, and in the header's order
    among equal qualities; the first one whose tag, or whose primary subtag
    ("es" of "es-419"), is offered wins. ``*`` stands for ``default``; an item
    with ``q=0`` or a malformed quality is not a wish. The rule is simple on
    purpose: nginx applies the same one to choose which pre-rendered page file
    to send (``portal.nginx.language_maps``), and falls back to the portal
    whenever a header is too odd for its regular expressions.
    """
    wishes: list[tuple[float, str]] = []
    for item in header.split(","):
        tag, *params = item.split(";")
        tag = tag.strip().lower().replace("_", "-")
        quality = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                quality = float(value) if _QUALITY.fullmatch(value) else 0.0
        if tag and quality > 0:
            wishes.append((quality, tag))
    wishes.sort(key=lambda wish: -wish[0])  # stable: the header's order among equals
    offered_lower = {code.lower().replace("_", "-"): code for code in offered}
    for _, tag in wishes:
        if tag == "*":
            return default
        if tag in offered_lower:
            return offered_lower[tag]
        primary = tag.split("-", 1)[0]
        if primary in offered_lower:
            return offered_lower[primary]
    return default


def _slim_locale(code: str) -> Locale | None:
    """The app's slim Babel locale for ``code`` (None for a language it does not offer)."""
    return current_app.config.get(_LOCALES_KEY, {}).get(code)


@functools.lru_cache(maxsize=64)
def language_name(code: str) -> str:
    """A language's name in that language itself ("العربية", "Español")."""
    try:
        locale = _slim_locale(code) or Locale.parse(code)
        name = locale.get_display_name() or code
    except (ValueError, LookupError):
        return code
    return name[:1].upper() + name[1:]


def text_direction(code: str | None = None) -> str:
    """``rtl`` or ``ltr`` for ``code`` (default: the current language)."""
    code = code or str(get_locale() or "en")
    return "rtl" if code.split("_")[0] in RTL_LANGUAGES else "ltr"


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 32 or c == "\\" for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def here() -> str:
    """The current page as a local path with its query, for ``?next=``."""
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


def when(timestamp: int | None, kind: str = "date") -> str:
    """A Unix time formatted for the reader's language (``date`` or ``datetime``).

    ``datetime`` is the medium date with the short time: to the minute, never
    "12:00:44 AM" (nobody posts a notice to the second).
    """
    if timestamp is None:
        return ""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    if kind == "datetime":
        locale = get_locale() or Locale.parse("en")
        pattern = str(locale.datetime_formats["medium"]).format(
            locale.time_formats["short"].pattern, locale.date_formats["medium"].pattern)
        return format_datetime(moment, pattern)
    return format_date(moment, "medium")


def filesize(size: int) -> str:
    """A byte count as a short, localised size ("1.4 MB", "١٫٤ ميغابايت")."""
    locale = get_locale() or "en"
    for unit, scale in (("digital-gigabyte", 10**9), ("digital-megabyte", 10**6),
                        ("digital-kilobyte", 10**3)):
        if size >= scale:
            return format_unit(size / scale, unit, length="short", format="#,##0.#",
                               locale=locale)
    return format_unit(size, "digital-byte", length="short", locale=locale)


def translate_message(value: object) -> str:
    """A message from ``node`` (a :class:`node.messages.Message`) in the reader's language.

    The template is looked up in the catalog and filled with the message's
    parameters (those that are messages themselves are translated first).
    Plain strings, and a translation whose placeholders do not fit, come back
    as the English text: a reader always sees something true.
    """
    if not isinstance(value, Message):
        return str(value)
    params = {name: translate_message(param) if isinstance(param, Message) else param
              for name, param in value.params.items()}
    translated = get_translations().ugettext(value.template)
    if not params:
        return translated
    try:
        return translated % params
    except (KeyError, TypeError, ValueError):
        return str(value)


def iso(timestamp: int | None) -> str:
    """A Unix time as ISO 8601 for ``<time datetime=...>``."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


@bp.get("/language/<code>")
def choose(code: str) -> Response:
    """Remember the reader's language in a cookie and go back where they were."""
    if code not in offered_languages():
        abort(404)
    response = redirect(safe_next(request.args.get("next")), code=303)
    response.set_cookie(LANG_COOKIE, code, max_age=LANG_COOKIE_MAX_AGE, httponly=True,
                        samesite="Lax")
    return response


def _vary_on_language(response: Response) -> Response:
    response.vary.add("Accept-Language")
    response.vary.add("Cookie")
    return response


def init_app(app: Flask) -> None:
    """Set up Flask-Babel, the language menu's route and template helpers."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    app.config.setdefault("BABEL_DEFAULT_LOCALE",
                          app.config["NODE_CONFIG"].portal.default_language)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", _system_timezone())
    portal_config = app.config["NODE_CONFIG"].portal
    app.config[_OFFERED_KEY] = tuple(portal_config.languages)
    app.config[_LOCALES_KEY] = slim_locales(
        tuple(dict.fromkeys([*portal_config.languages, portal_config.default_language])))
    Babel(app, locale_selector=select_locale)
    app.register_blueprint(bp)
    app.after_request(_vary_on_language)
    app.jinja_env.globals.update(
        offered_languages=offered_languages, language_name=language_name,
        text_direction=text_direction, current_path=here, get_locale=get_locale)
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["ago"] = ago
    app.jinja_env.filters["iso"] = iso
    app.jinja_env.filters["filesize"] = filesize


def _system_timezone() -> str:
    """The node's own time zone name (Debian's /etc/timezone), else UTC."""
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
    except OSError:
        return "UTC"
    try:
        pytz.timezone(name)
    except pytz.UnknownTimeZoneError:
        return "UTC"
    return name
