"""Pausing automatic updates for the whole mesh: a signed ``update.pause`` entry.

An admin's choice travels like every other piece of content: a signed entry
(docs/entry-format.md, "Updates") replicated by the existing sync, checked by
every node. The latest one a node holds (by ``ts``, then author, then seq)
decides; none means not paused. A node's update service reads it before
every check; the organisers' admin page and ``meshhub update pause|resume``
write it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.errors import PermissionDenied, ValidationError
from node.frozen import frozen
from node.identity import fingerprint
from node.store import validate

if TYPE_CHECKING:
    from node.store import Store

PAUSE_KIND = "update.pause"


@frozen
class PauseState:
    """Whether updates are paused mesh-wide, by whom, when (Unix seconds) and why."""

    paused: bool = False
    reason: str = ""
    actor: str | None = None
    at: int | None = None
    node: str | None = None  #: fingerprint of the node where the admin acted

    def to_json(self) -> dict[str, Any]:
        """The state as JSON (``/update/v1/status``, the health document)."""
        return dict(self.__dict__)


def pause_state(database: str | Path) -> PauseState:
    """The mesh-wide pause as the store at ``database`` holds it (read-only, any thread)."""
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return PauseState()
    try:
        row = conn.execute("SELECT body, actor, ts, author FROM entries WHERE kind = ? "
                           "ORDER BY ts DESC, author DESC, seq DESC LIMIT 1",
                           (PAUSE_KIND,)).fetchone()
    except sqlite3.Error:  # a database not created yet: nobody paused anything
        return PauseState()
    finally:
        conn.close()
    if row is None or row[0] is None:
        return PauseState()
    body = json.loads(row[0])
    return PauseState(bool(body.get("paused")), str(body.get("reason", "")), row[1],
                      row[2] // 1000, fingerprint(row[3]))


def set_pause(store: Store, paused: bool, actor: str, reason: str = "") -> PauseState:
    """Record an admin's pause (or resume) as a signed entry; returns the new state.

    Raises :class:`PermissionDenied` unless ``actor`` is an enabled admin
    account, :class:`ValidationError` for a reason that is too long.
    """
    account = store.account(actor)
    if account is None or account.disabled:
        raise PermissionDenied(f"{actor!r} is not an enabled organiser account")
    if account.role != "admin":
        raise PermissionDenied(f"{actor} is a {account.role}; pausing updates needs the "
                               "admin role")
    problems: dict[str, str] = {}
    clean = validate.text(problems, "reason", reason)
    if problems:
        raise ValidationError(problems)
    body: dict[str, Any] = {"paused": bool(paused)}
    if clean:
        body["reason"] = clean
    store.append(PAUSE_KIND, body, actor=actor)
    return pause_state(store.path)
