"""The audit: who did what, and when, taken from the signed log (newest first).

Written for people, not from the code: accounts by their display names, nodes
by their names (from the community registry; a fingerprint only for a node it
does not name), and an edit's fields in words ("the end date", not
"expires_at"). Each action is a short card, so the page fits a phone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from flask import Blueprint, current_app, g, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l

from node.identity import fingerprint
from node.store.models import AuditEvent
from portal.auth import login_required, role_at_least
from portal.organisers.services import node_config, store
from portal.paging import page_number

bp = Blueprint("audit", __name__, url_prefix="/audit")

PER_PAGE = 50
#: Kinds that create an item: the item's id is the entry's own id.
_CREATING = frozenset({"listing.post", "notice.post", "library.add", "submission.create"})

#: Readable names for entry kinds (unknown kinds are shown as they are).
KIND_LABELS = {
    "listing.post": _l("posted a listing"), "listing.edit": _l("changed a listing"),
    "listing.delete": _l("deleted a listing"), "notice.post": _l("posted a notice"),
    "notice.edit": _l("changed a notice"), "notice.delete": _l("deleted a notice"),
    "library.add": _l("added to the library"), "library.edit": _l("changed a library item"),
    "library.delete": _l("deleted a library item"),
    "submission.decide": _l("decided a submission"),
    "account.create": _l("created an account"), "account.update": _l("changed an account"),
    "update.pause": _l("paused or resumed software updates"),
    "broadcast.set": _l("sent or ended an emergency notice"),
}
#: Fields as organisers call them (unknown fields are shown by name).
FIELD_LABELS = {
    "title": _l("the title"), "body": _l("the text"), "price": _l("the price"),
    "contact": _l("the contact details"), "category": _l("the category"),
    "expires_at": _l("the end date"), "pinned": _l("pinning"), "urgent": _l("urgency"),
    "author": _l("the author"), "language": _l("the language"),
    "description": _l("the description"), "collection": _l("the collection"),
    "display_name": _l("the display name"), "role": _l("the role"),
    "password_hash": _l("the password"), "disabled": _l("whether it may sign in"),
    "broadcast": _l("whether it may send emergency notices"),
    "notice": _l("the emergency notice"), "ends_at": _l("the end time"),
}


@dataclass(frozen=True)
class AuditRow:
    """One action as the audit and the dashboard show it."""

    event: AuditEvent
    who: str  #: the account's display name (its sign-in name if it has none)
    what: str  #: e.g. "changed a listing"
    subject: str  #: the item's title (or the summary when the item is gone)
    link: str | None
    changed: str  #: the changed fields in words, comma-separated ("" if none)
    node: str  #: the signing node's name, or its fingerprint when unknown


def node_names() -> dict[str, str]:
    """Node fingerprints to names: this node's own, and every node of the registry."""
    reads = store()
    names = {fingerprint(reads.identity.public_key):
             current_app.config["NODE_CONFIG"].node.name}
    snapshot = getattr(reads.trust, "snapshot", None)
    for node in snapshot.snapshot.get("nodes", []) if snapshot is not None else []:
        names[fingerprint(node["public_key"])] = node["name"]
    return names


def audit_rows(events: Sequence[AuditEvent]) -> list[AuditRow]:
    """The readable form of ``events`` (see the module's docstring)."""
    reads = store()
    nodes = node_names()
    people: dict[str | None, str] = {}
    rows = []
    for event in events:
        if event.actor not in people:
            account = reads.account(event.actor) if event.actor else None
            people[event.actor] = (account.display_name if account and account.display_name
                                   else event.actor or "")
        item_id = event.entry_id if event.kind in _CREATING else event.target
        item = _item(event.kind.split(".", 1)[0], item_id)
        subject = getattr(item, "title", None) or (
            event.summary if not event.fields else "")
        if event.kind == "account.update":
            subject = event.summary.split(":", 1)[0]  # the account's name
        changed = ", ".join(str(FIELD_LABELS.get(name, name)) for name in event.fields)
        rows.append(AuditRow(event, people[event.actor], str(KIND_LABELS.get(event.kind,
                                                                             event.kind)),
                             subject, item_link(event), changed,
                             nodes.get(event.node, event.node)))
    return rows


def _item(family: str, item_id: str | None) -> object | None:
    if not item_id:
        return None
    reader = {"listing": store().listing, "notice": store().notice,
              "library": store().library_item}.get(family)
    return reader(item_id) if reader else None


def item_link(event: AuditEvent) -> str | None:
    """A link to the item ``event`` concerns, if it still exists; else ``None``."""
    item_id = event.entry_id if event.kind in _CREATING else event.target
    family = event.kind.split(".", 1)[0]
    reads = store()
    if family == "account":
        admin = role_at_least(g.account, "admin")
        return url_for("organisers.accounts.index") if admin else None
    if not item_id:
        return None
    if family == "listing" and reads.listing(item_id) is not None:
        return url_for("organisers.posts.edit", plural="listings", item_id=item_id)
    if family == "notice" and reads.notice(item_id) is not None:
        return url_for("organisers.posts.edit", plural="notices", item_id=item_id)
    if family == "library" and reads.library_item(item_id) is not None:
        return url_for("organisers.library.edit", item_id=item_id)
    if (family == "submission" and role_at_least(g.account, "moderator")
            and reads.submission(item_id) is not None):
        return url_for("organisers.moderation.show", submission_id=item_id)
    return None


@bp.get("/")
@login_required()
def index() -> ResponseReturnValue:
    """One page of organisers' actions within ``privacy.audit_retention_days``."""
    since = int(time.time()) - 86400 * int(node_config().privacy.audit_retention_days)
    page = store().audit(page=page_number(), per_page=PER_PAGE, since=since)
    return render_template("organisers/audit.html", page=page, rows=audit_rows(page.items))
