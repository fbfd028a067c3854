"""Organiser accounts: admins create them, change roles, disable and enable them;
everyone changes their own password.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from node.errors import ValidationError
from portal.auth import (
    account_key,
    end_other_sessions,
    login_required,
    role_at_least,
    sessions,
    signin_limits,
    start_session,
)
from portal.i18n import translate_message
from portal.organisers.forms import AccountForm, ActionForm, PasswordForm, RoleForm, apply_errors
from portal.organisers.services import actor, found, hub, store

bp = Blueprint("accounts", __name__)


def _render_accounts(form: AccountForm, leftover: list[str], status: int = 200
                     ) -> ResponseReturnValue:
    accounts = store().accounts()
    role_forms = {a.name: RoleForm(prefix=f"role-{a.name}", data={"role": a.role})
                  for a in accounts}
    from node.broadcast import may_broadcast

    broadcasters = {a.name for a in accounts if may_broadcast(store().path, a.name)}
    return render_template("organisers/accounts.html", accounts=accounts, form=form,
                           role_forms=role_forms, action_form=ActionForm(),
                           leftover=leftover, broadcasters=broadcasters), status


@bp.route("/accounts/", methods=["GET", "POST"])
@login_required("admin")
def index() -> ResponseReturnValue:
    """Every account, and the form to create one."""
    form = AccountForm()
    leftover: list[str] = []
    if form.validate_on_submit():
        try:
            account = hub().create_account(
                actor(), name=(form.name.data or "").strip(), password=form.password.data or "",
                role=form.role.data, display_name=(form.display_name.data or "").strip())
        except ValidationError as error:
            leftover = apply_errors(form, error.fields)
        else:
            flash(_("Account %(name)s created.", name=account.name), "success")
            return redirect(url_for(".index"))
    return _render_accounts(form, leftover)


@bp.post("/accounts/<name>/role")
@login_required("admin")
def role(name: str) -> ResponseReturnValue:
    """Give an account another role."""
    account = found(store().account(name))
    form = RoleForm(prefix=f"role-{account.name}")
    if form.validate_on_submit():
        try:
            hub().set_role(actor(), account.name, form.role.data)
        except ValidationError as error:
            flash(" ".join(map(translate_message, error.fields.values())), "error")
        else:
            flash(_("%(name)s is now %(role)s.", name=account.name,
                    role=dict(form.role.choices)[form.role.data]), "success")
    else:
        flash(" ".join(e for errs in form.errors.values() for e in errs), "error")
    return redirect(url_for(".index"))


@bp.post("/accounts/<name>/disabled")
@login_required("admin")
def disabled(name: str) -> ResponseReturnValue:
    """Disable (``disabled=1``) or re-enable (``disabled=0``) an account."""
    account = found(store().account(name))
    disable = request.form.get("disabled") == "1"
    if ActionForm().validate_on_submit():
        try:
            hub().set_disabled(actor(), account.name, disable)
            if disable:
                sessions().end_account(account.name)
        except ValidationError as error:
            flash(" ".join(map(translate_message, error.fields.values())), "error")
        else:
            message = (_("%(name)s is disabled and signed out everywhere.", name=account.name)
                       if disable else _("%(name)s can sign in again.", name=account.name))
            flash(message, "success")
    return redirect(url_for(".index"))


@bp.post("/accounts/<name>/broadcast")
@login_required("admin")
def broadcast(name: str) -> ResponseReturnValue:
    """Allow (``broadcast=1``) or stop (``broadcast=0``) an account sending emergency
    notices (admins always may: node.broadcast)."""
    from node.broadcast import set_permission

    account = found(store().account(name))
    allow = request.form.get("broadcast") == "1"
    if ActionForm().validate_on_submit():
        set_permission(hub(), actor(), account.name, allow)
        flash(_("%(name)s may send emergency notices.", name=account.name) if allow else
              _("%(name)s may no longer send emergency notices.", name=account.name), "success")
    return redirect(url_for(".index"))


@bp.route("/password", methods=["GET", "POST"])
@login_required("technician")
def password() -> ResponseReturnValue:
    """Change one's own password (the current one is asked for again)."""
    form = PasswordForm()
    leftover: list[str] = []
    if form.validate_on_submit():
        me = g.account.name
        # Guessing the current password counts against the same limit as sign-in.
        per_account, _per_client = signin_limits()
        key = account_key(me)
        if per_account.retry_after(key) > 0:
            form.current_password.errors = [_("Too many wrong passwords. Please wait and "
                                              "try again later.")]
        elif hub().authenticate(me, form.current_password.data or "") is None:
            per_account.hit(key)
            form.current_password.errors = [_("That is not your current password.")]
        else:
            try:
                account = hub().set_password(me, me, form.new_password.data or "")
            except ValidationError as error:
                leftover = apply_errors(form, error.fields, {"password": "new_password",
                                                             "new_password": "new_password"})
            else:
                # Other browsers signed in as this account are signed out at their
                # next request (the password changed); this one stays signed in.
                start_session(account)
                end_other_sessions(me)
                flash(_("Your password was changed. Other devices signed in as you "
                        "have been signed out."), "success")
                return redirect(url_for("organisers.dashboard.index")
                                if role_at_least(account, "organiser")
                                else url_for("technicians.index"))
    return render_template("organisers/password.html", form=form, leftover=leftover)
