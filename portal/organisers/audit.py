"""The audit: who did what, and when, taken from the signed log (newest first)."""

from __future__ import annotations

import time

from flask import Blueprint, g, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l

from node.store.models import AuditEvent
from portal.auth import login_required, role_at_least
from portal.organisers.services import setting, store
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
}


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
    since = int(time.time()) - 86400 * int(setting("privacy.audit_retention_days"))
    page = store().audit(page=page_number(), per_page=PER_PAGE, since=since)
    rows = [(event, KIND_LABELS.get(event.kind, event.kind), item_link(event))
            for event in page.items]
    return render_template("organisers/audit.html", page=page, rows=rows)
