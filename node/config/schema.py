"""The ``node.toml`` schema: every key declared once, with type, default and help.

This module is the single source of truth for the node's configuration.
``docs/node-toml.md`` is checked against it by the test suite, and
``meshhub config show`` prints it with effective values.  Other packages
(``portal``, ``provisioning``) import it; nobody keeps a copy.

To add a key: append a :class:`Setting` to :data:`SETTINGS` in its section,
then document it in ``docs/node-toml.md`` (the tests tell you if you forget).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Setting:
    """One key of ``node.toml``: where it lives, what it holds and why it exists."""

    section: str
    name: str
    type: type
    default: Any
    help: str
    item_type: type | None = None  #: element type when ``type`` is ``list``
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    check: Check | None = None  #: extra check, returns a message or ``None``

    @property
    def key(self) -> str:
        """The dotted name, ``section.name``, used in messages and docs."""
        return f"{self.section}.{self.name}"

    def describe_type(self) -> str:
        """A short human description of the expected type (for messages and docs)."""
        names = {str: "string", int: "integer", float: "number", bool: "true/false", list: "list"}
        text = names.get(self.type, self.type.__name__)
        if self.type is list and self.item_type is not None:
            text = f"list of {names.get(self.item_type, self.item_type.__name__)}s"
        return text


def _hostname_label(value: Any) -> str | None:
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", str(value)):
        return "must be a host name: lower-case letters, digits and '-', 1-63 characters"
    return None


def _language_tag(value: Any) -> str | None:
    if not re.fullmatch(r"[a-z]{2,3}(?:_[A-Z]{2})?", str(value)):
        return "must be a language code such as 'en', 'ar' or 'pt_BR'"
    return None


def _ed25519_hex(value: Any) -> str | None:
    if not re.fullmatch(r"[0-9a-f]{64}", str(value)):
        return "must be an Ed25519 public key: 64 lower-case hex digits"
    return None


def _ipv4_network(value: Any) -> str | None:
    try:
        ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        return f"must be an IPv4 network such as 10.42.0.0/16 ({exc})"
    return None


def _ipv4_address(value: Any) -> str | None:
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return "must be an IPv4 address such as 10.42.0.1"
    return None


def _country(value: Any) -> str | None:
    if not re.fullmatch(r"[A-Z]{2}", str(value)):
        return "must be a two-letter ISO 3166 country code in capitals, such as 'GB' or 'DE'"
    return None


SETTINGS: tuple[Setting, ...] = (
    # --- [node] -------------------------------------------------------------
    Setting("node", "name", str, "meshhub-node",
            "This node's name on the mesh: a host name (letters, digits, '-').",
            check=_hostname_label),
    Setting("node", "data_dir", str, "/var/lib/meshhub",
            "Directory for the node's database, identity key, secrets and library files."),
    Setting("node", "community", str, "Our Neighbourhood",
            "The community's name, shown in page titles and the 'about' page."),
    Setting("node", "location", str, "",
            "Where the node stands, for people (e.g. 'Library roof, Elm Street')."),
    # --- [portal] -----------------------------------------------------------
    Setting("portal", "listen", str, "127.0.0.1",
            "Address the portal's WSGI server listens on (nginx proxies to it).",
            check=_ipv4_address),
    Setting("portal", "port", int, 8080, "TCP port of the portal's WSGI server.",
            minimum=1, maximum=65535),
    Setting("portal", "threads", int, 8, "Worker threads of the WSGI server.",
            minimum=1, maximum=64),
    Setting("portal", "languages", list, ["en", "ar", "es"],
            "Interface languages offered to residents, in menu order.",
            item_type=str),
    Setting("portal", "default_language", str, "en",
            "Language used when the reader's browser asks for none that is offered.",
            check=_language_tag),
    Setting("portal", "page_size", int, 20, "Items per page in listings and the library.",
            minimum=5, maximum=100),
    Setting("portal", "upload_max_mb", int, 200,
            "Largest library upload accepted, in MiB (ZIM archives and videos may need more).",
            minimum=1, maximum=65536),
    Setting("portal", "library_quota_mb", int, 8192,
            "Disk space the library may use on this node, in MiB.", minimum=16),
    Setting("portal", "behind_proxy", bool, False,
            "True when nginx (or another proxy) is in front: trust one X-Forwarded-For hop."),
    Setting("portal", "cache_seconds", int, 5,
            "How long anonymous pages may be cached by the front (nginx micro-cache).",
            minimum=0, maximum=3600),
    # --- [privacy] ----------------------------------------------------------
    Setting("privacy", "submission_retention_days", int, 30,
            "Days a resident's submission (approved, rejected or pending) keeps its text "
            "in the moderation queue before it is erased.", minimum=1, maximum=3650),
    Setting("privacy", "audit_retention_days", int, 365,
            "Days the audit page shows organisers' actions for.", minimum=1, maximum=36500),
    # --- [organisers] -------------------------------------------------------
    Setting("organisers", "signin_max_attempts", int, 5,
            "Failed sign-ins allowed per account and per client before a pause.",
            minimum=1, maximum=100),
    Setting("organisers", "signin_window_minutes", int, 15,
            "Window over which failed sign-ins are counted, and the pause after too many.",
            minimum=1, maximum=1440),
    Setting("organisers", "session_hours", int, 12,
            "Hours an organiser stays signed in without activity.", minimum=1, maximum=720),
    # --- [trust] ------------------------------------------------------------
    Setting("trust", "node_keys", list, [],
            "Public keys (64 hex digits) of other nodes whose entries this node accepts, "
            "until the community registry is installed.", item_type=str, check=None),
)

#: Checks applied to each element of list settings, by key.
ITEM_CHECKS: dict[str, Check] = {
    "trust.node_keys": _ed25519_hex,
    "portal.languages": _language_tag,
}

#: Helpers other modules may reuse when they declare their own keys.
CHECKS: dict[str, Check] = {
    "hostname_label": _hostname_label,
    "language_tag": _language_tag,
    "ed25519_hex": _ed25519_hex,
    "ipv4_network": _ipv4_network,
    "ipv4_address": _ipv4_address,
    "country": _country,
}


def settings_by_key() -> dict[str, Setting]:
    """All settings indexed by their dotted key."""
    return {s.key: s for s in SETTINGS}


def sections() -> list[str]:
    """Section names in declaration order."""
    seen: list[str] = []
    for setting in SETTINGS:
        if setting.section not in seen:
            seen.append(setting.section)
    return seen
