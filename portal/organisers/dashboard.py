"""The organisers' start page: figures, what waits for a decision, recent actions."""

from __future__ import annotations

from flask import Blueprint, g, render_template
from flask.typing import ResponseReturnValue

from portal.auth import login_required, role_at_least
from portal.organisers.audit import audit_rows
from portal.organisers.forms import ActionForm
from portal.organisers.services import store

bp = Blueprint("dashboard", __name__)

#: Recent actions shown on the dashboard (the audit page has them all).
RECENT_ACTIONS = 10


@bp.get("/")
@login_required()
def index() -> ResponseReturnValue:
    """Counts, pending submissions (for moderators) and the latest actions."""
    reads = store()
    counts = reads.dashboard_counts()
    pending = reads.submissions("pending") if role_at_least(g.account, "moderator") else []
    recent = audit_rows(reads.recent_audit(RECENT_ACTIONS))
    return render_template("organisers/dashboard.html", counts=counts, pending=pending,
                           recent=recent, action_form=ActionForm())
