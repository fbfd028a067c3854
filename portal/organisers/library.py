"""The library: upload a file with its description, edit the description, delete.

The hub decides the file's type from its content (never its name), stores it
under its SHA-256 (so an uploaded name such as ``../../etc/passwd.pdf`` is
only ever metadata) and refuses files over ``portal.upload_max_mb``. The app's
``MAX_CONTENT_LENGTH`` refuses larger requests even earlier, with a 413 page.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from node.errors import ValidationError
from portal.auth import login_required
from portal.organisers.forms import ActionForm, LibraryItemForm, LibraryUploadForm, apply_errors
from portal.organisers.services import actor, found, hub, node_config, store
from portal.organisers.staging import Kept, Staging
from portal.paging import page_number

bp = Blueprint("library", __name__, url_prefix="/library")

META_FIELDS = ("title", "author", "language", "description", "collection")
#: The hub's names for upload problems that belong next to the file field.
FILE_ALIASES = {"stream": "file", "filename": "file", "size": "file", "max_bytes": "file",
                "media_type": "file", "mime": "file", "sha256": "file"}


def max_upload_bytes() -> int:
    """The largest upload accepted, from ``portal.upload_max_mb``."""
    return int(node_config().portal.upload_max_mb) * 1024 * 1024


@bp.get("/")
@login_required()
def index() -> ResponseReturnValue:
    """Every library item with its actions, newest first."""
    per_page = int(current_app.config.get("PAGE_SIZE", 20))
    page = store().library_items(page=page_number(), per_page=per_page)
    return render_template("organisers/library.html", page=page, action_form=ActionForm())


def _staging() -> Staging:
    return Staging(Path(current_app.config["NODE_CONFIG"].data_dir) / "upload-staging", actor())


@bp.route("/upload", methods=["GET", "POST"])
@login_required()
def upload() -> ResponseReturnValue:
    """The upload form, and adding the file to the library.

    When the form is refused for anything but the file itself, the file is kept
    on the node (:mod:`portal.organisers.staging`) and the next try may omit it.
    """
    form = LibraryUploadForm()
    staging = _staging()
    staging.sweep()
    kept = staging.get(form.staged.data)
    new = form.file.data if form.file.data and form.file.data.filename else None
    leftover: list[str] = []
    if form.validate_on_submit():
        meta = {name: (form[name].data or "").replace("\r\n", "\n") for name in META_FIELDS}
        if new is None and kept is None:
            form.file.errors = [_("Choose a file to upload.")]
            return _upload_form(form, None, leftover)
        try:
            if new is not None:
                item = hub().add_library_file(actor(), new.stream, filename=new.filename or "",
                                              **meta, max_bytes=max_upload_bytes())
            else:
                assert kept is not None
                with open(kept.path, "rb") as stream:
                    item = hub().add_library_file(actor(), stream, filename=kept.filename,
                                                  **meta, max_bytes=max_upload_bytes())
        except ValidationError as error:
            leftover = apply_errors(form, error.fields, FILE_ALIASES)
            if form.file.errors:  # the file itself was refused: nothing to keep
                staging.discard(form.staged.data)
                return _upload_form(form, None, leftover)
        else:
            staging.discard(form.staged.data)
            flash(_("“%(title)s” was added to the library.", title=item.title), "success")
            return redirect(url_for(".index"))  # the message is at the top, as is the new item
    if new is not None and request.method == "POST":
        staging.discard(form.staged.data)
        kept = staging.keep(new.stream, new.filename or "")
    return _upload_form(form, kept, leftover)


def _upload_form(form: LibraryUploadForm, kept: Kept | None,
                 leftover: list[str]) -> ResponseReturnValue:
    form.staged.data = kept.token if kept else ""
    return render_template("organisers/library_form.html", form=form, item=None, kept=kept,
                           leftover=leftover, max_mb=node_config().portal.upload_max_mb)


@bp.route("/<item_id>/edit", methods=["GET", "POST"])
@login_required()
def edit(item_id: str) -> ResponseReturnValue:
    """Change an item's title, author, language, description or collection."""
    item = found(store().library_item(item_id))
    form = LibraryItemForm(data={name: getattr(item, name) for name in META_FIELDS})
    leftover: list[str] = []
    if form.validate_on_submit():
        values = {name: (form[name].data or "").replace("\r\n", "\n") for name in META_FIELDS}
        changes = {k: v for k, v in values.items() if v != getattr(item, k)}
        if not changes:
            flash(_("Nothing was changed."), "info")
            return redirect(url_for(".index"))
        try:
            hub().edit_library_item(actor(), item.id, **changes)
        except ValidationError as error:
            leftover = apply_errors(form, error.fields)
        else:
            flash(_("Library item saved."), "success")
            return redirect(url_for(".index", _anchor=f"item-{item.id}"))
    return render_template("organisers/library_form.html", form=form, item=item,
                           leftover=leftover, max_mb=node_config().portal.upload_max_mb)


@bp.route("/<item_id>/delete", methods=["GET", "POST"])
@login_required()
def delete(item_id: str) -> ResponseReturnValue:
    """Ask for confirmation (GET), then remove the item from the library (POST)."""
    item = found(store().library_item(item_id))
    form = ActionForm()
    if form.validate_on_submit():
        hub().delete_library_item(actor(), item.id)
        flash(_("Library item deleted."), "success")
        return redirect(url_for(".index"))
    return render_template("organisers/confirm_delete.html", item=item, form=form,
                           cancel=url_for(".index"), what=_("library item"))
