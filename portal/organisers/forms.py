"""The organisers' forms (flask-wtf: every one carries a CSRF token).

Field names equal the keyword arguments of :class:`node.hub.Hub`, so that a
``ValidationError`` from the hub lands next to the right field
(:func:`apply_errors`). The content rules themselves (lengths, categories,
accepted file types) live once, in the hub; these forms only turn text into
values (dates, booleans) and check what only a form can (a password typed
twice).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

from flask import current_app
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Optional

from node.blobs import UPLOAD_ACCEPT
from node.store.models import CATEGORIES, ROLES
from portal.i18n import translate_message
from portal.residents.labels import CATEGORY_LABELS

MARKDOWN_HELP = _l("You can use Markdown: *italic*, **bold**, [link](https://…), lists with -. "
                   "HTML is removed.")
EXPIRY_EXAMPLE_DAYS = 7  #: the expiry hint's example date lies this many days ahead


def expiry_help() -> str:
    """The expiry field's hint: a future example date, in the node's own time zone (named)."""
    zone = get_timezone()
    example = (datetime.now(tz=zone) + timedelta(days=EXPIRY_EXAMPLE_DAYS)).replace(
        hour=18, minute=0)
    return _("Optional. Date and time in this node's time zone (%(zone)s), e.g. %(example)s. "
             "After it, residents no longer see it. Leave empty to keep it until you "
             "expire it.", zone=str(zone), example=example.strftime("%Y-%m-%d %H:%M"))


class Needed:
    """Marks a field as required (its label says so) without checking it here: the hub
    checks, so the message is the same on the web and in the CLI."""

    field_flags: ClassVar[dict[str, bool]] = {"required": True}

    def __call__(self, form: FlaskForm, field: Any) -> None:
        """Nothing to check here (see the class)."""


class _WithExpiryHelp(FlaskForm):
    """A form whose ``expires_at`` hint is written when the form is made (today's example)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expires_at.description = expiry_help()
        urgent = getattr(self, "urgent", None)
        if urgent is not None:
            hours = current_app.config["NODE_CONFIG"].portal.urgent_notice_hours
            urgent.description = _("Without an expiry, an urgent notice ends after %(hours)d "
                                   "hours.", hours=hours)

#: What the expiry field accepts; the first is what <input type="datetime-local"> needs.
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


def category_choices() -> list[tuple[str, Any]]:
    """Listing categories as (value, translated label) pairs, in residents' order."""
    return [(c, CATEGORY_LABELS.get(c, c)) for c in CATEGORIES]


def role_choices() -> list[tuple[str, Any]]:
    """Roles as (value, translated label) pairs, least powerful first."""
    labels = {"technician": _l("Technician"), "organiser": _l("Organiser"),
              "moderator": _l("Moderator"), "admin": _l("Admin")}
    return [(r, labels.get(r, r)) for r in ROLES]


class ActionForm(FlaskForm):
    """A form with no fields but its CSRF token: buttons that change something."""


class SignInForm(FlaskForm):
    """Account name and password."""

    name = StringField(_l("Account name"), validators=[DataRequired()],
                       render_kw={"autocomplete": "username", "autocapitalize": "none",
                                  "spellcheck": "false"})
    password = PasswordField(_l("Password"), validators=[DataRequired()],
                             render_kw={"autocomplete": "current-password"})


class ConfirmForm(FlaskForm):
    """The signed-in admin's password, typed again before an admin action."""

    password = PasswordField(_l("Password"), validators=[DataRequired()],
                             render_kw={"autocomplete": "current-password"})


class ListingForm(_WithExpiryHelp):
    """Post or edit a listing."""

    category = SelectField(_l("Category"), choices=category_choices)
    title = StringField(_l("Title"), validators=[Needed()])
    body = TextAreaField(_l("Description"), description=MARKDOWN_HELP, validators=[Needed()],
                         render_kw={"rows": 8})
    price = StringField(_l("Price"), description=_l("Optional, e.g. “£5” or “free”."))
    contact = StringField(_l("Contact"), description=_l(
        "Optional. How residents reach the poster: a phone number, an address, a time."))
    expires_at = DateTimeLocalField(_l("Expires"), validators=[Optional()],
                                    format=DATETIME_FORMATS)
    pinned = BooleanField(_l("Pin to the top of its category"))


class NoticeForm(_WithExpiryHelp):
    """Post or edit a notice."""

    title = StringField(_l("Title"), validators=[Needed()])
    body = TextAreaField(_l("Text"), description=MARKDOWN_HELP, validators=[Needed()],
                         render_kw={"rows": 8})
    urgent = BooleanField(_l("Urgent (water outage, road closure…): shown first everywhere"))
    pinned = BooleanField(_l("Pin above other notices"))
    expires_at = DateTimeLocalField(_l("Expires"), validators=[Optional()],
                                    format=DATETIME_FORMATS)


class LibraryItemForm(FlaskForm):
    """A library item's description (editing)."""

    title = StringField(_l("Title"))
    author = StringField(_l("Author"), description=_l("Optional."))
    language = StringField(_l("Language"), description=_l(
        "Optional. The language of the content as a short code: en for English, ar for "
        "Arabic, es for Spanish."))
    description = TextAreaField(_l("Description"), description=MARKDOWN_HELP,
                                render_kw={"rows": 6})
    collection = StringField(_l("Collection"), description=_l(
        "Optional. Items of one collection are shown together, e.g. “Health”."))


class LibraryUploadForm(LibraryItemForm):
    """A new library file and its description.

    The file is not required by the form itself: a file kept from an earlier try
    (``staged``, see :mod:`portal.organisers.staging`) stands in for it.
    """

    file = FileField(_l("File"), render_kw={"accept": UPLOAD_ACCEPT})
    staged = HiddenField()


class RejectForm(FlaskForm):
    """Reject a resident's submission, saying why."""

    reason = TextAreaField(_l("Reason"), description=_l(
        "Kept in the audit so other moderators see why."), render_kw={"rows": 3})


class AccountForm(FlaskForm):
    """Create an organiser account (admins)."""

    name = StringField(_l("Account name"), description=_l(
        "Used to sign in: lower-case letters, digits and dashes."),
        render_kw={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"})
    display_name = StringField(_l("Display name"), description=_l(
        "Optional. Shown to other organisers, e.g. “Food bank – Amira”."))
    role = SelectField(_l("Role"), choices=role_choices, default="organiser", description=_l(
        "Technicians only see the health of the mesh's nodes; organisers also post and "
        "upload; moderators also decide residents' submissions; admins also manage accounts."))
    password = PasswordField(_l("Initial password"), description=_l(
        "Give it to the person privately; they should change it after signing in."),
        render_kw={"autocomplete": "new-password"})


class RoleForm(FlaskForm):
    """Change an account's role (admins)."""

    role = SelectField(_l("Role"), choices=role_choices)


class PasswordForm(FlaskForm):
    """Change one's own password."""

    current_password = PasswordField(_l("Current password"), validators=[DataRequired()],
                                     render_kw={"autocomplete": "current-password"})
    new_password = PasswordField(_l("New password"), validators=[DataRequired()],
                                 render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), EqualTo("new_password",
                                            message=_l("The two new passwords differ."))],
        render_kw={"autocomplete": "new-password"})


def to_timestamp(value: datetime | None) -> int | None:
    """A form's date and time (the node's time zone) as Unix seconds; ``None`` stays."""
    if value is None:
        return None
    zone = get_timezone()
    localize = getattr(zone, "localize", None)  # pytz zones need localize()
    aware = localize(value) if localize else value.replace(tzinfo=zone)
    return int(aware.timestamp())


def from_timestamp(value: int | None) -> datetime | None:
    """Unix seconds as the date and time (the node's time zone) a form shows."""
    if value is None:
        return None
    moment = datetime.fromtimestamp(value, tz=get_timezone())
    return moment.replace(tzinfo=None, second=0, microsecond=0)


def apply_errors(form: FlaskForm, fields: dict[str, str],
                 aliases: dict[str, str] | None = None) -> list[str]:
    """Attach a ``ValidationError``'s messages, in the reader's language, to the form's fields.

    ``aliases`` maps the hub's field names to the form's where they differ.
    Returns the messages that belong to no field, for the error summary.
    """
    leftover: list[str] = []
    for name, original in fields.items():
        message = translate_message(original)
        field = form._fields.get((aliases or {}).get(name, name))
        if field is None or name == "csrf_token":
            leftover.append(message)
        else:
            field.errors = [*list(field.errors), message]
    return leftover
