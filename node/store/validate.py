"""Checks on what people type, with messages they can act on.

Used by :class:`node.hub.Hub` (so the web forms and the CLI give the same
answers). Each check adds ``field -> message`` to a problems dict; the
caller raises one :class:`node.errors.ValidationError` with all of them.
Messages are :class:`node.messages.Message`: English text that the portal
translates into the reader's language.
"""

from __future__ import annotations

from typing import Any

from node.messages import N_, msg
from node.store.kinds import ACCOUNT_NAME, LANGUAGE, required_text, text_limits
from node.store.models import CATEGORIES, ROLES

PASSWORD_MIN = 10
PASSWORD_MAX = 1024
#: Field limits in characters, from the entry kinds (node.store.kinds, docs/entry-format.md),
#: so a form refuses exactly what every node would refuse.
LIMITS: dict[str, int] = text_limits()
#: Fields that may not be left empty (the text fields a creating kind requires).
REQUIRED = required_text()

Problems = dict[str, str]


def text(problems: Problems, name: str, value: object) -> str:
    """Check a text field against its limit; returns it with outer whitespace removed."""
    if not isinstance(value, str):
        problems[name] = msg(N_("must be text"))
        return ""
    value = value.strip()
    limit = LIMITS[name]
    if name in REQUIRED and not value:
        problems[name] = msg(N_("required"))
    elif len(value) > limit:
        problems[name] = msg(N_("at most %(max)d characters (this has %(count)d)"), max=limit,
                            count=len(value))
    elif "\x00" in value:
        problems[name] = msg(N_("contains a NUL character"))
    return value


def flag(problems: Problems, name: str, value: Any) -> bool:
    """Check a yes/no field."""
    if not isinstance(value, bool):
        problems[name] = msg(N_("must be true or false"))
        return False
    return value


def category(problems: Problems, value: Any) -> str:
    """Check a listing category."""
    if value not in CATEGORIES:
        problems["category"] = msg(N_("choose one of: %(choices)s"), choices=", ".join(CATEGORIES))
    return str(value)


def expiry(problems: Problems, value: object, now: int) -> int | None:
    """Check an expiry time (Unix seconds, or None for never): it must be in the future."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems["expires_at"] = msg(N_("must be a time (Unix seconds) or empty"))
        return None
    if value <= now:
        problems["expires_at"] = msg(N_("must be in the future"))
    return value


def language(problems: Problems, value: object) -> str:
    """Check a language tag such as 'en' or 'pt-BR' (may be empty)."""
    checked = text(problems, "language", value)
    if "language" not in problems and not LANGUAGE.fullmatch(checked):
        problems["language"] = msg(N_("write the language as a short code: en for English, "
                                      "ar for Arabic, es for Spanish (or leave it empty)"))
    return checked


def account_name(problems: Problems, value: Any) -> str:
    """Check an organiser account name."""
    if not isinstance(value, str) or not ACCOUNT_NAME.fullmatch(value):
        problems["name"] = msg(N_("2-32 lower-case letters, digits, '.', '_' or '-', "
                                  "starting with a letter or digit"))
        return ""
    return value


def role(problems: Problems, value: Any) -> str:
    """Check an organiser role."""
    if value not in ROLES:
        problems["role"] = msg(N_("choose one of: %(choices)s"), choices=", ".join(ROLES))
    return str(value)


def password(problems: Problems, value: Any, name: str = "password") -> str:
    """Check a new password's length (long passphrases beat complexity rules)."""
    if not isinstance(value, str) or len(value) < PASSWORD_MIN:
        problems[name] = msg(N_("must be at least %(min)d characters (a few words are fine)"),
                            min=PASSWORD_MIN)
    elif len(value) > PASSWORD_MAX:
        problems[name] = msg(N_("at most %(max)d characters"), max=PASSWORD_MAX)
    return value if isinstance(value, str) else ""
