"""Entry kinds and the shape of their bodies, checked on creation and on ingest.

One table (:data:`KINDS`) says, for each kind, which body fields exist, their
types and limits, whether the entry must name a target and whether it must or
must not carry an organiser (``actor``). docs/entry-format.md mirrors it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import field
from typing import Any

from node.frozen import frozen
from node.store.models import CATEGORIES, MEDIA_TYPES, ROLES

HEX64 = re.compile(r"[0-9a-f]{64}")
#: Organiser account names: short, lower-case, safe in URLs and logs.
ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")
LANGUAGE = re.compile(r"([A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*)?")

TITLE_MAX = 120
TEXT_MAX = 5000
SHORT_MAX = 200


@frozen
class Field:
    """One body field: its JSON type(s), whether required, and its limits."""

    types: tuple[type, ...]
    required: bool = False
    max_len: int | None = None
    min_len: int = 0
    check: Callable[[Any], str | None] | None = None  #: extra check, returns a problem or None


def _choice(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)}"
    return check


def _hex64(value: Any) -> str | None:
    return None if value is None or HEX64.fullmatch(value) else "must be 64 lower-case hex digits"


def _non_negative(value: Any) -> str | None:
    return None if value is None or value >= 0 else "must not be negative"


#: The range an expiry (Unix seconds) may take: 2000-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
#: Below, it is a mistake (0, a count of days); above, no date can show it.
EXPIRES_MIN, EXPIRES_MAX = 946_684_800, 253_402_300_799


def _expiry(value: Any) -> str | None:
    if value is None or EXPIRES_MIN <= value <= EXPIRES_MAX:
        return None
    return (f"must be Unix seconds from {EXPIRES_MIN} (2000-01-01) to {EXPIRES_MAX} "
            "(9999-12-31), or null")


def _account_name(value: Any) -> str | None:
    if ACCOUNT_NAME.fullmatch(value):
        return None
    return ("must be 2-32 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")


def _language(value: Any) -> str | None:
    return None if LANGUAGE.fullmatch(value) else "must be a language tag such as 'en' or 'pt-BR'"


def _filename(value: Any) -> str | None:
    if "/" in value or "\\" in value or value.startswith(".") or "\x00" in value:
        return "must be a plain file name (no path)"
    return None


def _argon2(value: Any) -> str | None:
    return None if value.startswith("$argon2") else "must be an Argon2 encoded hash"


STR, INT, BOOL, NONE = (str,), (int,), (bool,), (type(None),)

_LISTING = {
    "category": Field(STR, True, check=_choice(CATEGORIES)),
    "title": Field(STR, True, TITLE_MAX, 1),
    "body": Field(STR, True, TEXT_MAX),
    "price": Field(STR, False, 60),
    "contact": Field(STR, False, SHORT_MAX),
    "expires_at": Field(INT + NONE, False, check=_expiry),
    "pinned": Field(BOOL),
}
_NOTICE = {
    "title": Field(STR, True, TITLE_MAX, 1),
    "body": Field(STR, True, TEXT_MAX),
    "urgent": Field(BOOL),
    "pinned": Field(BOOL),
    "expires_at": Field(INT + NONE, False, check=_expiry),
}
_LIBRARY_META = {
    "title": Field(STR, True, TITLE_MAX, 1),
    "author": Field(STR, False, TITLE_MAX),
    "language": Field(STR, False, 35, check=_language),
    "description": Field(STR, False, TEXT_MAX),
    "collection": Field(STR, False, 80),
}
_LIBRARY_FILE = {
    "media_type": Field(STR, True, check=_choice(MEDIA_TYPES)),
    "mime": Field(STR, True, 100, 1),
    "sha256": Field(STR, True, check=_hex64),
    "size": Field(INT, True, check=_non_negative),
    "filename": Field(STR, True, 255, 1, check=_filename),
}
_SUBMISSION = {k: _LISTING[k] for k in ("category", "title", "body", "price", "contact")}
_ACCOUNT = {
    "name": Field(STR, True, check=_account_name),
    "display_name": Field(STR, False, 80),
    "role": Field(STR, True, check=_choice(ROLES)),
    "password_hash": Field(STR, True, 512, check=_argon2),
    "disabled": Field(BOOL),
    # May send emergency broadcasts (admins always may; node/broadcast.py).
    "broadcast": Field(BOOL),
}
_DELETE = {"reason": Field(STR, False, 500)}


def _patch(fields: dict[str, Field], keep_required: tuple[str, ...] = ()) -> dict[str, Field]:
    """The same fields, all optional (an edit changes only what it names)."""
    return {name: Field(f.types, name in keep_required, f.max_len, f.min_len, f.check)
            for name, f in fields.items()}


@frozen
class Kind:
    """What an entry of one kind must look like."""

    name: str
    fields: dict[str, Field]
    target: bool  #: True: ``target`` must be an entry id; False: it must be null
    actor: str  #: "required", "forbidden" or "optional"
    patch: bool = False  #: an edit: at least one field besides keys in ``keys``
    keys: tuple[str, ...] = field(default=())

    @property
    def family(self) -> str:
        """The part before the dot: listing, notice, library, submission, account."""
        return self.name.split(".", 1)[0]

    @property
    def action(self) -> str:
        """The part after the dot: post, edit, delete, add, create, decide, update."""
        return self.name.split(".", 1)[1]


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("listing.post", {**_LISTING, "from_submission": Field(STR + NONE, check=_hex64)},
         False, "required"),
    Kind("listing.edit", _patch(_LISTING), True, "required", patch=True),
    Kind("listing.delete", _DELETE, True, "required"),
    Kind("notice.post", _NOTICE, False, "required"),
    Kind("notice.edit", _patch(_NOTICE), True, "required", patch=True),
    Kind("notice.delete", _DELETE, True, "required"),
    Kind("library.add", {**_LIBRARY_META, **_LIBRARY_FILE}, False, "required"),
    Kind("library.edit", _patch(_LIBRARY_META), True, "required", patch=True),
    Kind("library.delete", _DELETE, True, "required"),
    Kind("submission.create", _SUBMISSION, False, "forbidden"),
    Kind("submission.decide", {"approve": Field(BOOL, True), "reason": Field(STR, False, 500),
                               "listing_id": Field(STR + NONE, check=_hex64)},
         True, "required"),
    Kind("account.create", _ACCOUNT, False, "optional"),
    Kind("account.update", _patch(_ACCOUNT, ("name",)), False, "optional", patch=True,
         keys=("name",)),
    # An admin pauses (or resumes) automatic updates for the whole mesh (node/update/pause.py).
    # An emergency broadcast: every phone sees the notice first until ends_at (Unix seconds);
    # notice null ends it (node/broadcast.py).
    Kind("broadcast.set", {"notice": Field(STR + NONE, True, check=_hex64),
                           "ends_at": Field(INT, False, check=_non_negative)},
         False, "required"),
    Kind("update.pause", {"paused": Field(BOOL, True), "reason": Field(STR, False, 500)},
         False, "required"),
)}

#: Kinds that create an item (the item's id is the entry's id).
CREATING = frozenset({"listing.post", "notice.post", "library.add", "submission.create"})


def editable(family: str) -> tuple[str, ...]:
    """The body fields an organiser may change in an item of ``family``, in declared order.

    They are the fields of the family's ``.edit`` kind, so the hub, the
    organisers' forms and the entry format cannot disagree about them.
    """
    return tuple(KINDS[f"{family}.edit"].fields)


def text_limits() -> dict[str, int]:
    """Each text field's limit in characters, over every kind (a name has one limit)."""
    limits: dict[str, int] = {}
    for kind in KINDS.values():
        for name, spec in kind.fields.items():
            if spec.max_len is None:
                continue
            if limits.setdefault(name, spec.max_len) != spec.max_len:
                raise ValueError(f"field {name}: two limits ({limits[name]} and "
                                 f"{spec.max_len}, in {kind.name}); a name has one limit")
    return limits


def required_text() -> frozenset[str]:
    """Text fields that a creating kind requires: people must fill them in (not blank)."""
    return frozenset(name for kind in CREATING for name, spec in KINDS[kind].fields.items()
                     if spec.required and spec.types == STR)


def body_problems(kind: Kind, body: Any) -> list[str]:
    """Everything wrong with ``body`` for ``kind``, as ``field X: problem`` strings."""
    if not isinstance(body, dict):
        return ["body: must be an object"]
    problems = [f"field {name}: unknown for {kind.name}" for name in body
                if name not in kind.fields]
    for name, spec in kind.fields.items():
        if name not in body:
            if spec.required:
                problems.append(f"field {name}: missing")
            continue
        value = body[name]
        # bool is a subclass of int: an int field must not accept true/false.
        wrong_bool = isinstance(value, bool) and bool not in spec.types
        if wrong_bool or not isinstance(value, spec.types):
            problems.append(f"field {name}: wrong type {type(value).__name__}")
            continue
        if isinstance(value, str):
            if spec.max_len is not None and len(value) > spec.max_len:
                problems.append(f"field {name}: longer than {spec.max_len} characters")
                continue
            if len(value) < spec.min_len:
                problems.append(f"field {name}: empty")
                continue
        if spec.check is not None and value is not None:
            problem = spec.check(value)
            if problem:
                problems.append(f"field {name}: {problem}")
    if kind.patch and not set(body) - set(kind.keys):
        problems.append("body: an edit must change at least one field")
    return problems


def header_problems(kind: Kind, actor: Any, target: Any) -> list[str]:
    """Problems with ``actor``/``target`` for ``kind`` (types were checked already)."""
    problems = []
    if kind.target and target is None:
        problems.append(f"field target: required for {kind.name}")
    if not kind.target and target is not None:
        problems.append(f"field target: must be null for {kind.name}")
    if kind.actor == "required" and actor is None:
        problems.append(f"field actor: required for {kind.name}")
    if kind.actor == "forbidden" and actor is not None:
        problems.append(f"field actor: must be null for {kind.name}")
    return problems
