"""Listings and notices: post, edit, expire, pin or unpin, and delete (after a confirmation).

Both kinds work the same way, so one set of views serves both, parameterised
by a :class:`_Kind`. Every change goes through :class:`node.hub.Hub`; its
``ValidationError`` is shown next to the fields, with what was typed kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf import FlaskForm

from node.errors import ValidationError
from node.hub import PostFamily
from node.store.kinds import editable
from node.store.models import Listing, Notice, Page
from portal.auth import login_required
from portal.organisers.forms import (
    ActionForm,
    ListingForm,
    NoticeForm,
    apply_errors,
    from_timestamp,
    to_timestamp,
)
from portal.organisers.services import actor, found, hub, store
from portal.paging import page_number, require_existing

bp = Blueprint("posts", __name__)
#: In the organiser's session after Expire: what Undo needs (the item and its earlier expiry).
UNDO_KEY = "undo_expire"


@dataclass(frozen=True)
class _Kind:
    """What differs between listings and notices."""

    name: PostFamily  #: the hub's family: "listing" or "notice"
    plural: str  #: URL part and template prefix: "listings" or "notices"
    form: type[FlaskForm]
    public_endpoint: str  #: the residents' page of one item

    @property
    def fields(self) -> tuple[str, ...]:
        """The form's fields: the family's editable fields (node.store.kinds)."""
        return editable(self.name)


LISTING = _Kind("listing", "listings", ListingForm, "listings.show")
NOTICE = _Kind("notice", "notices", NoticeForm, "notices.show")
KINDS = {k.plural: k for k in (LISTING, NOTICE)}


def _kind(plural: str) -> _Kind:
    kind = KINDS.get(plural)
    return found(kind)


def _get(kind: _Kind, item_id: str) -> Listing | Notice:
    return cast("Listing | Notice", found(hub().find(kind.name, item_id)))


def _form_values(kind: _Kind, form: FlaskForm) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in kind.fields:
        data = form[name].data
        if name == "expires_at":
            data = to_timestamp(data)
        elif isinstance(data, str) or data is None:
            data = (data or "").replace("\r\n", "\n")
        values[name] = data
    return values


def _messages(kind: _Kind) -> dict[str, str]:
    if kind is LISTING:
        return {"post": _("Listing published."), "edit": _("Listing saved."),
                "expire": _("Listing expired: residents no longer see it."),
                "undo": _("Listing restored: residents see it again."),
                "pin": _("Listing pinned."), "unpin": _("Listing unpinned."),
                "delete": _("Listing deleted."), "same": _("Nothing was changed.")}
    return {"post": _("Notice published."), "edit": _("Notice saved."),
            "expire": _("Notice expired: residents no longer see it."),
            "undo": _("Notice restored: residents see it again."),
            "pin": _("Notice pinned."), "unpin": _("Notice unpinned."),
            "delete": _("Notice deleted."), "same": _("Nothing was changed.")}


def _back(kind: _Kind, item_id: str | None = None) -> ResponseReturnValue:
    anchor = f"item-{item_id}" if item_id else None
    return redirect(url_for(".index", plural=kind.plural, _anchor=anchor))


@bp.get("/<any(listings, notices):plural>/")
@login_required()
def index(plural: str) -> ResponseReturnValue:
    """Every listing (or notice) with its actions, expired ones included and marked."""
    kind = _kind(plural)
    per_page = int(current_app.config.get("PAGE_SIZE", 20))
    # now=0: the view as seen from the start of time, so expired items are included.
    # Paged by the store, so every page stays small (under 50 KB) as the node ages.
    page: Page[Listing | Notice]
    if kind is LISTING:
        page = store().listings(page=page_number(), per_page=per_page, now=0)
    else:
        page = store().notice_page(page=page_number(), per_page=per_page, now=0)
    require_existing(page)
    return render_template(f"organisers/{kind.plural}.html", kind=kind, items=page.items,
                           page=page, now=int(time.time()), action_form=ActionForm())


@bp.route("/<any(listings, notices):plural>/new", methods=["GET", "POST"])
@login_required()
def new(plural: str) -> ResponseReturnValue:
    """The form to post a listing or notice, and publishing it."""
    kind = _kind(plural)
    form = kind.form()
    leftover: list[str] = []
    if form.validate_on_submit():
        try:
            hub().post(kind.name, actor(), **_form_values(kind, form))
        except ValidationError as error:
            leftover = apply_errors(form, error.fields)
        else:
            flash(_messages(kind)["post"], "success")
            # To the top of the list, where the message is (a new item is near the top too).
            return _back(kind)
    return render_template("organisers/post_form.html", kind=kind, form=form, item=None,
                           leftover=leftover)


@bp.route("/<any(listings, notices):plural>/<item_id>/edit", methods=["GET", "POST"])
@login_required()
def edit(plural: str, item_id: str) -> ResponseReturnValue:
    """The form to change a listing or notice, prefilled with what it says now."""
    kind = _kind(plural)
    item = _get(kind, item_id)
    form = kind.form(data={name: (from_timestamp(getattr(item, name)) if name == "expires_at"
                                  else getattr(item, name)) for name in kind.fields})
    leftover: list[str] = []
    if form.validate_on_submit():
        values = _form_values(kind, form)
        if item.expires_at is not None and form.expires_at.data == from_timestamp(item.expires_at):
            # The form shows the expiry to the minute: left as shown, it is unchanged
            # (an expired item's typo can be fixed without bringing it back).
            values["expires_at"] = item.expires_at
        changes = {k: v for k, v in values.items() if v != getattr(item, k)}
        if not changes:
            flash(_messages(kind)["same"], "info")
            return _back(kind)
        try:
            hub().edit(kind.name, actor(), item.id, **changes)
        except ValidationError as error:
            leftover = apply_errors(form, error.fields)
        else:
            flash(_messages(kind)["edit"], "success")
            return _back(kind, item.id)
    return render_template("organisers/post_form.html", kind=kind, form=form, item=item,
                           leftover=leftover)


@bp.post("/<any(listings, notices):plural>/<item_id>/expire")
@login_required()
def expire(plural: str, item_id: str) -> ResponseReturnValue:
    """End a listing or notice now (it stays in the audit; the list then offers Undo)."""
    kind = _kind(plural)
    item = _get(kind, item_id)
    hub().expire(kind.name, actor(), item.id)
    session[UNDO_KEY] = {"plural": kind.plural, "id": item.id, "title": item.title,
                         "expires_at": item.expires_at}
    flash(_messages(kind)["expire"], "success")
    return _back(kind)


@bp.post("/<any(listings, notices):plural>/<item_id>/undo-expire")
@login_required()
def undo_expire(plural: str, item_id: str) -> ResponseReturnValue:
    """Give back the expiry an item had before this organiser's last Expire (once)."""
    kind = _kind(plural)
    item = _get(kind, item_id)
    undo = session.get(UNDO_KEY)
    if not isinstance(undo, dict) or undo.get("id") != item.id or undo.get("plural") != plural:
        flash(_("There is nothing to undo."), "info")
        return _back(kind)
    session.pop(UNDO_KEY)
    try:
        hub().edit(kind.name, actor(), item.id, expires_at=undo.get("expires_at"))
    except ValidationError:
        flash(_("Its earlier end date has passed meanwhile: edit it to choose a new one."),
              "error")
        return redirect(url_for(".edit", plural=kind.plural, item_id=item.id))
    flash(_messages(kind)["undo"], "success")
    return _back(kind, item.id)


@bp.post("/<any(listings, notices):plural>/<item_id>/pin")
@login_required()
def pin(plural: str, item_id: str) -> ResponseReturnValue:
    """Pin (``pinned=1``) or unpin (``pinned=0``) a listing or notice."""
    kind = _kind(plural)
    item = _get(kind, item_id)
    pinned = request.form.get("pinned") == "1"
    if pinned != item.pinned:
        hub().edit(kind.name, actor(), item.id, pinned=pinned)
    flash(_messages(kind)["pin" if pinned else "unpin"], "success")
    return _back(kind)


@bp.route("/<any(listings, notices):plural>/<item_id>/delete", methods=["GET", "POST"])
@login_required()
def delete(plural: str, item_id: str) -> ResponseReturnValue:
    """Ask for confirmation (GET), then delete for good on every node (POST)."""
    kind = _kind(plural)
    item = _get(kind, item_id)
    form = ActionForm()
    if form.validate_on_submit():
        hub().delete(kind.name, actor(), item.id)
        flash(_messages(kind)["delete"], "success")
        return _back(kind)
    return render_template("organisers/confirm_delete.html", item=item, form=form,
                           cancel=url_for(".index", plural=kind.plural),
                           what=_("listing") if kind is LISTING else _("notice"))
