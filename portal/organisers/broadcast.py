"""The emergency notice: send an urgent notice to every phone on the mesh, or end it.

An account with the broadcast permission (admins; others an admin grants it to)
sends it with an end time within 7 days (:mod:`node.broadcast`). It is two signed
entries that replicate like all content; every node's gate then holds every phone
at the portal until its resident has read the notice. Everyone signed in sees
the page and what is in force; only those with the permission get the forms.
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, StringField, TextAreaField
from wtforms.validators import Optional

from node.broadcast import cancel_broadcast, current_broadcast, may_broadcast, send_broadcast
from node.errors import NotFound, ValidationError
from portal.auth import login_required
from portal.organisers.forms import (
    DATETIME_FORMATS,
    MARKDOWN_HELP,
    Needed,
    apply_errors,
    to_timestamp,
)
from portal.organisers.services import actor, hub, store

bp = Blueprint("broadcast", __name__)


class BroadcastForm(FlaskForm):
    """The emergency notice's text and its end (required, at most 7 days ahead)."""

    title = StringField(_l("Title"), validators=[Needed()])
    body = TextAreaField(_l("Text"), description=MARKDOWN_HELP, validators=[Needed()],
                         render_kw={"rows": 6})
    # Optional here: a missing end gets node.broadcast's own message, in the reader's language.
    ends_at = DateTimeLocalField(_l("Ends"), validators=[Optional()], format=DATETIME_FORMATS,
                                 description=_l(
        "Required, at most 7 days ahead. Until then every phone sees this notice first."))


class CancelForm(FlaskForm):
    """End the broadcast in force now (only the CSRF token)."""


@bp.route("/broadcast", methods=["GET", "POST"])
@login_required("organiser")
def index() -> ResponseReturnValue:
    """What is in force, and (with the permission) the forms to send or end it."""
    form = BroadcastForm()
    allowed = may_broadcast(store().path, actor())
    if allowed and form.validate_on_submit():
        try:
            sent = send_broadcast(hub(), actor(), title=form.title.data or "",
                                  body=form.body.data or "",
                                  ends_at=to_timestamp(form.ends_at.data))
        except ValidationError as exc:
            form.form_errors.extend(apply_errors(form, exc.fields))
        else:
            current_app.logger.warning("emergency broadcast sent by %s until %s", actor(),
                                       sent.ends_at)
            flash(_l("The emergency notice is on its way to every node. Each phone sees it "
                     "at its next check."), "success")
            return redirect(url_for("organisers.broadcast.index"), code=303)
    found = current_broadcast(store().path, time.time())
    notice = store().notice(found.notice) if found else None
    return render_template("organisers/broadcast.html", form=form, cancel=CancelForm(),
                           found=found, notice=notice, allowed=allowed)


@bp.post("/broadcast/cancel")
@login_required("organiser")
def cancel() -> ResponseReturnValue:
    """End the broadcast in force (PermissionDenied gives 403 without the permission)."""
    if CancelForm().validate_on_submit():
        try:
            cancel_broadcast(hub(), actor())
        except NotFound:
            flash(_l("There is no emergency notice now."), "info")
        else:
            current_app.logger.warning("emergency broadcast cancelled by %s", actor())
            flash(_l("The emergency notice is ended on every node as soon as they receive "
                     "this."), "success")
    return redirect(url_for("organisers.broadcast.index"), code=303)
