"""Residents' submissions: the queue, and approving (which publishes) or rejecting;
and residents' reports of listings (this node's), to expire the listing or dismiss.

Moderators and admins only; an organiser gets 403 here (and from the hub).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from node.errors import ValidationError
from portal.auth import login_required
from portal.i18n import translate_message
from portal.organisers.forms import ActionForm, RejectForm, apply_errors
from portal.organisers.services import actor, found, hub, store
from portal.residents.report import REASON_LABELS

bp = Blueprint("moderation", __name__, url_prefix="/moderation")

#: Recently decided submissions shown under the queue.
RECENT_DECISIONS = 20


@bp.get("/")
@login_required("moderator")
def index() -> ResponseReturnValue:
    """Pending submissions (oldest first) and the latest decisions."""
    reads = store()
    decided = [s for s in reads.submissions(None) if s.status != "pending"][:RECENT_DECISIONS]
    now = int(reads.clock())
    reported = []
    for group in reads.reports():
        listing = reads.listing(group.listing_id)
        if listing is not None and (listing.expires_at is None or listing.expires_at > now):
            reported.append((group, listing))
    return render_template("organisers/moderation.html", pending=reads.submissions("pending"),
                           decided=decided, reported=reported, reason_labels=REASON_LABELS,
                           action_form=ActionForm())


@bp.post("/reports/<listing_id>/dismiss")
@login_required("moderator")
def dismiss(listing_id: str) -> ResponseReturnValue:
    """The reported listing is fine: forget its reports."""
    if ActionForm().validate_on_submit():
        hub().dismiss_reports(actor(), listing_id)
        flash(_("Reports dismissed: the listing stays."), "success")
    return redirect(url_for(".index"))


@bp.get("/<submission_id>")
@login_required("moderator")
def show(submission_id: str) -> ResponseReturnValue:
    """One submission with the approve and reject forms."""
    submission = found(store().submission(submission_id))
    return render_template("organisers/submission.html", submission=submission,
                           approve_form=ActionForm(), reject_form=RejectForm(), leftover=[])


@bp.post("/<submission_id>/approve")
@login_required("moderator")
def approve(submission_id: str) -> ResponseReturnValue:
    """Publish the submission as a listing."""
    submission = found(store().submission(submission_id))
    if ActionForm().validate_on_submit():
        try:
            decided = hub().decide_submission(actor(), submission.id, approve=True)
        except ValidationError as error:  # decided meanwhile, or its text already erased
            flash(" ".join(map(translate_message, error.fields.values())), "error")
        else:
            flash(_("Approved: “%(title)s” is now published.", title=decided.title), "success")
    return redirect(url_for(".index"))


@bp.post("/<submission_id>/reject")
@login_required("moderator")
def reject(submission_id: str) -> ResponseReturnValue:
    """Refuse the submission, with a reason kept in the audit."""
    submission = found(store().submission(submission_id))
    form = RejectForm()
    leftover: list[str] = []
    if form.validate_on_submit():
        try:
            hub().decide_submission(actor(), submission.id, approve=False,
                                    reason=(form.reason.data or "").strip())
        except ValidationError as error:
            leftover = apply_errors(form, error.fields)
        else:
            flash(_("Rejected: “%(title)s”.", title=submission.title), "success")
            return redirect(url_for(".index"))
    return render_template("organisers/submission.html", submission=submission,
                           approve_form=ActionForm(), reject_form=form, leftover=leftover)
