""""Report this listing": a resident tells this node's moderators that a listing breaks
the house rules. Rate-limited per device; nothing about the reporter is kept."""

from __future__ import annotations

import math

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.validators import DataRequired, Length

from node.errors import NotFound, ValidationError
from node.store.reports import REPORT_REASONS
from portal.db import found, get_hub, get_store
from portal.i18n import translate_message
from portal.ratelimit import app_limiter
from portal.residents.submit import _option

bp = Blueprint("report", __name__)

REASON_LABELS = {"scam": _l("A scam, or something illegal"),
                 "offensive": _l("Offensive or hateful"),
                 "outdated": _l("Wrong, or no longer true"),
                 "other": _l("Something else (say what below)")}


class ReportForm(FlaskForm):
    """Why the listing should be looked at."""

    reason = RadioField(_l("What is wrong with it?"),
                        choices=[_option(r, REASON_LABELS[r]) for r in REPORT_REASONS],
                        validators=[DataRequired(_l("Choose what is wrong with it."))])
    details = TextAreaField(_l("Anything a moderator should know (optional)"),
                            validators=[Length(max=500)], render_kw={"rows": 3})


@bp.route("/listing/<listing_id>/report", methods=["GET", "POST"])
def form(listing_id: str) -> ResponseReturnValue:
    """The report form; a valid POST keeps the report for the moderators and says thanks."""
    listing = found(get_store().listing(listing_id))
    form = ReportForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("residents/report.html", form=form, listing=listing), status
    limiter = app_limiter(current_app, "REPORT")
    client = request.remote_addr or "unknown"
    if not limiter.hit(client):
        wait = math.ceil(limiter.retry_after(client))
        response = Response(render_template("residents/report_limited.html",
                                            minutes=math.ceil(wait / 60)), status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        get_hub().report_listing(listing.id, reason=form.reason.data or "",
                                 details=form.details.data or "")
    except NotFound:
        return redirect(url_for("listings.show", listing_id=listing.id), code=303)
    except ValidationError as exc:
        for name, message in exc.fields.items():
            field = form._fields.get(name)
            if field is not None:
                field.errors = [*field.errors, translate_message(message)]
        return render_template("residents/report.html", form=form, listing=listing), 400
    return redirect(url_for("report.thanks", listing_id=listing.id), code=303)


@bp.get("/listing/<listing_id>/report/thanks")
def thanks(listing_id: str) -> str:
    """Tell the resident a moderator will look at it."""
    return render_template("residents/report_thanks.html",
                           listing=found(get_store().listing(listing_id)))
