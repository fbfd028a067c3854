"""The emergency notice: an urgent notice put in front of every phone on the mesh.

An organiser with the ``broadcast`` permission (every admin; others when an admin
grants it) posts an urgent notice *as an emergency broadcast* with an end time at
most :data:`MAX_SECONDS` ahead. Two signed entries, made in one transaction and
replicated like all content (docs/entry-format.md, "Emergency broadcasts"):

* a ``notice.post`` with ``urgent: true`` that expires at the end time, and
* a ``broadcast.set`` naming that notice and the end time (``notice: null`` cancels).

Every node works out the broadcast in force from what it holds
(:func:`current_broadcast`): the latest ``broadcast.set`` from an account that may
broadcast, whose end lies ahead and whose notice is still there. The check is made
by every node, not only where the organiser acted: a ``broadcast.set`` from an
account without the permission changes nothing anywhere. The gate
(:mod:`node.gate.broadcast`) then holds every device back at the portal until it
has read the notice; the portal's captive pages show the notice first.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.errors import NotFound, PermissionDenied, ValidationError
from node.frozen import frozen
from node.messages import N_, msg

if TYPE_CHECKING:
    from node.hub import Hub

BROADCAST_KIND = "broadcast.set"
#: The furthest end time a broadcast may have, from the moment it is sent.
MAX_SECONDS = 7 * 86400
#: The account field that grants the permission to non-admins (``account.update``).
PERMISSION = "broadcast"


@frozen
class Broadcast:
    """The broadcast in force: which notice, until when (Unix seconds), who sent it."""

    id: str  #: the ``broadcast.set`` entry's id (a new broadcast asks everyone again)
    notice: str  #: the notice's id
    ends_at: int
    actor: str
    sent_at_ms: int  #: the entry's ``ts``: when it was signed (Unix milliseconds)

    @property
    def sent_at(self) -> int:
        """When it was sent (Unix seconds)."""
        return self.sent_at_ms // 1000


def _granted(conn: sqlite3.Connection, name: str) -> bool:
    """Whether account ``name``'s entries grant it the permission (the latest word wins)."""
    granted = False
    for (body,) in conn.execute(
            "SELECT body FROM entries WHERE subject = ? AND kind LIKE 'account.%' "
            "AND body IS NOT NULL ORDER BY ts, author, seq", (f"account:{name}",)):
        value = json.loads(body).get(PERMISSION)
        if isinstance(value, bool):
            granted = value
    return granted


def _may_broadcast(conn: sqlite3.Connection, actor: str | None) -> bool:
    """Whether ``actor`` is an enabled account that is an admin or was granted the permission."""
    if actor is None:
        return False
    row = conn.execute("SELECT role, disabled FROM accounts WHERE name = ?", (actor,)).fetchone()
    if row is None or row[1]:
        return False
    return row[0] == "admin" or _granted(conn, actor)


def _read(database: str | Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)


def may_broadcast(database: str | Path, actor: str | None) -> bool:
    """Whether ``actor`` may send an emergency broadcast, as the store at ``database`` says."""
    conn = _read(database)
    try:
        return _may_broadcast(conn, actor)
    finally:
        conn.close()


def broadcast_in(conn: sqlite3.Connection, now: float) -> Broadcast | None:
    """The broadcast in force at ``now`` (Unix seconds) in the store open on ``conn``.

    The latest ``broadcast.set`` (by ``ts``, author, seq) from an account that may
    broadcast decides; entries from other accounts are passed over (refused), as are
    ones whose end lies more than :data:`MAX_SECONDS` after they were made. It is in
    force if it names a notice that is still held and its end lies ahead.
    """
    rows = conn.execute("SELECT id, actor, ts, body FROM entries WHERE kind = ? "
                        "AND body IS NOT NULL ORDER BY ts DESC, author DESC, seq DESC",
                        (BROADCAST_KIND,))
    for entry_id, actor, ts, body_json in rows.fetchall():
        if not _may_broadcast(conn, actor):
            continue
        body = json.loads(body_json)
        notice, ends_at = body.get("notice"), body.get("ends_at")
        if notice is None:
            return None  # cancelled
        if not isinstance(ends_at, int) or ends_at * 1000 > ts + MAX_SECONDS * 1000:
            continue
        if ends_at <= now:
            return None
        held = conn.execute("SELECT 1 FROM notices WHERE id = ?", (notice,)).fetchone()
        return Broadcast(entry_id, notice, ends_at, actor, ts) if held else None
    return None


def current_broadcast(database: str | Path, now: float) -> Broadcast | None:
    """The broadcast in force in the store at ``database`` (read-only, any thread).

    None when there is none, or no database yet.
    """
    try:
        conn = _read(database)
    except sqlite3.Error:
        return None
    try:
        return broadcast_in(conn, now)
    except sqlite3.Error:  # a database not created yet: nothing was ever broadcast
        return None
    finally:
        conn.close()


def check_end(ends_at: object, now: int) -> int:
    """``ends_at`` as Unix seconds after ``now`` and at most :data:`MAX_SECONDS` ahead.

    Raises :class:`ValidationError` (field ``ends_at``) with what to do otherwise.
    """
    if ends_at is None:
        raise ValidationError({"ends_at": msg(N_("an emergency broadcast needs an end time"))})
    if isinstance(ends_at, bool) or not isinstance(ends_at, int):
        raise ValidationError({"ends_at": msg(N_("must be a time (Unix seconds)"))})
    if ends_at <= now:
        raise ValidationError({"ends_at": msg(N_("must be in the future"))})
    if ends_at > now + MAX_SECONDS:
        raise ValidationError({"ends_at": msg(N_("must be at most 7 days ahead; send a new "
                                                 "broadcast then if it is still needed"))})
    return ends_at


def _require_permission(hub: Hub, actor: str) -> None:
    if not may_broadcast(hub.store.path, actor):
        raise PermissionDenied(f"{actor!r} may not send emergency broadcasts (admins may; "
                               "an admin can grant it)")


def send_broadcast(hub: Hub, actor: str, *, title: str, body: str,
                   ends_at: object) -> Broadcast:
    """Post an urgent notice as an emergency broadcast until ``ends_at``; returns it.

    Raises :class:`PermissionDenied` unless ``actor`` may broadcast, and
    :class:`ValidationError` for an end time that is missing, past or more than
    7 days ahead, or a bad title or body. Both entries are signed in one transaction.
    """
    _require_permission(hub, actor)
    now = int(hub.clock())
    end = check_end(ends_at, now)
    clean = hub.check_notice_fields(title=title, body=body, expires_at=end)
    with hub.store.batch() as add:
        notice = add("notice.post", {**clean, "urgent": True, "pinned": False}, actor=actor)
        add(BROADCAST_KIND, {"notice": notice["id"], "ends_at": end}, actor=actor)
    found = current_broadcast(hub.store.path, now)
    if found is None or found.notice != notice["id"]:  # a later one, sent in between
        raise NotFound("the broadcast was replaced by a later one at once")
    return found


def cancel_broadcast(hub: Hub, actor: str) -> None:
    """End the broadcast in force now (its notice stays, as an urgent notice).

    Raises :class:`PermissionDenied` unless ``actor`` may broadcast, and
    :class:`NotFound` when no broadcast is in force.
    """
    _require_permission(hub, actor)
    if current_broadcast(hub.store.path, hub.clock()) is None:
        raise NotFound("no emergency broadcast is in force")
    hub.store.append(BROADCAST_KIND, {"notice": None}, actor=actor)


def set_permission(hub: Hub, actor: str, name: str, allowed: bool) -> None:
    """Grant or withdraw the broadcast permission of account ``name`` (admins only)."""
    hub.require_role(actor, "admin")
    account = hub.store.account(name)
    if account is None:
        raise NotFound(f"no organiser account {name!r}")
    conn = _read(hub.store.path)
    try:
        granted = _granted(conn, name)
    finally:
        conn.close()
    if granted != allowed:
        hub.store.append("account.update", {"name": name, PERMISSION: bool(allowed)},
                         actor=actor)


def describe(found: Broadcast | None) -> dict[str, Any]:
    """The broadcast as JSON (``meshhub broadcast show``)."""
    if found is None:
        return {"active": False}
    return {"active": True, "id": found.id, "notice": found.notice, "ends_at": found.ends_at,
            "actor": found.actor, "sent_at_ms": found.sent_at_ms}


class StoreWatch:
    """Tells cheaply whether the content store changed since the last look.

    SQLite's ``PRAGMA data_version`` on one read-only connection changes whenever
    another connection (replication, the portal, the CLI) commits, so the gate can look
    several times a second and run :func:`current_broadcast` only after a change. Use it
    from one thread; :meth:`close` when done.
    """

    def __init__(self, database: str | Path) -> None:
        self.database = database
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None

    def changed(self) -> bool:
        """Whether the store changed since the last call (True the first time, and while
        the database cannot be opened)."""
        try:
            if self._conn is None:
                self._conn = _read(self.database)
            (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            self.close()
            return True
        changed, self._version = version != self._version, version
        return bool(changed)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._version = None
