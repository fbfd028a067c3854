"""Residents submit a listing; it waits for an organiser's approval.

Against spam: a honeypot field that people leave empty (a filled one gets the
same thank-you page but nothing is stored) and a per-client rate limit.

The empty form is the same for everyone but its CSRF token: it is rendered once
per language (and path and query) and each visitor's token filled in
(:mod:`portal.token_pages`); a form sent back with its errors is rendered for its
sender.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from node.errors import ValidationError
from node.store.kinds import SHORT_MAX, TEXT_MAX, TITLE_MAX
from node.store.models import CATEGORIES
from portal.db import get_hub
from portal.i18n import translate_message
from portal.ratelimit import app_limiter
from portal.residents.labels import CATEGORY_LABELS
from portal.token_pages import filled, shared_key

bp = Blueprint("submit", __name__)
PRICE_MAX = 60


def _option(value: str, label: object) -> Any:
    """A select option (WTForms >= 3.3 wants ``SelectChoice``; older ones a tuple)."""
    try:
        from wtforms import SelectChoice
    except ImportError:  # pragma: no cover - WTForms < 3.3
        return (value, label)
    return SelectChoice(value, label)


class SubmitListingForm(FlaskForm):
    """A resident's proposed listing (all labels and messages translatable)."""

    category = SelectField(
        _l("Category"),
        choices=[_option("", _l("Choose a category")),
                 *(_option(c, CATEGORY_LABELS[c]) for c in CATEGORIES)],
        validators=[AnyOf(CATEGORIES, message=_l("Choose a category."))],
        validate_choice=False)
    title = StringField(_l("Title"), validators=[
        DataRequired(message=_l("Give your listing a title.")),
        Length(max=TITLE_MAX, message=_l("Keep the title under %(max)d characters."))])
    body = TextAreaField(_l("Description"), validators=[
        DataRequired(message=_l("Describe what you are offering or looking for.")),
        Length(max=TEXT_MAX, message=_l("Keep the description under %(max)d characters."))])
    price = StringField(_l("Price (optional)"), validators=[
        Optional(), Length(max=PRICE_MAX, message=_l("Keep the price under %(max)d characters."))])
    contact = StringField(_l("How people can reach you"), validators=[
        DataRequired(message=_l("Say how people can reach you, for example a phone number.")),
        Length(max=SHORT_MAX, message=_l("Keep this under %(max)d characters."))])
    #: The honeypot: hidden from view; people leave it empty, spam robots fill it in.
    website = StringField(_l("Leave this field empty"))


@bp.route("/submit", methods=["GET", "POST"])
def form() -> ResponseReturnValue:
    """Show the form; on a valid POST, queue the listing and go to the thank-you page."""
    if request.method != "POST":
        return _empty_form()
    form = SubmitListingForm()
    if not form.validate_on_submit():
        return render_template("residents/submit.html", form=form,
                               csrf_token=lambda: form.csrf_token.current_token), 400
    limiter = app_limiter(current_app, "SUBMIT")
    client = request.remote_addr or "unknown"
    if not limiter.hit(client):
        wait = math.ceil(limiter.retry_after(client) / 60)
        response = Response(render_template("residents/submit_limited.html", minutes=wait),
                            status=429)
        response.headers["Retry-After"] = str(math.ceil(limiter.retry_after(client)))
        return response
    if form.website.data:
        current_app.logger.info("submission from %s dropped: honeypot filled", client)
        return redirect(url_for("submit.thanks"), code=303)
    try:
        get_hub().submit_listing(category=form.category.data or "", title=form.title.data or "",
                                 body=form.body.data or "", price=form.price.data or "",
                                 contact=form.contact.data or "")
    except ValidationError as exc:
        for name, message in exc.fields.items():
            field = form._fields.get(name)
            if field is not None:
                field.errors = [*field.errors, translate_message(message)]
        return render_template("residents/submit.html", form=form,
                               csrf_token=lambda: form.csrf_token.current_token), 400
    return redirect(url_for("submit.thanks"), code=303)


def _empty_form() -> str:
    """The form as a resident first sees it, with their own CSRF token."""
    def render(token: Callable[[], str]) -> str:
        blank = SubmitListingForm(meta={"csrf": False})  # the token is filled in apart
        return render_template("residents/submit.html", form=blank, csrf_token=token)

    return filled(shared_key("submit"), render)


@bp.get("/submit/thanks")
def thanks() -> str:
    """Tell the resident an organiser will review their listing."""
    return render_template("residents/submit_thanks.html")
