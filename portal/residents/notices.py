"""Notices: urgent and pinned first, expired ones hidden; each printable."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from portal.db import found, get_store
from portal.residents.ended import ended_page, has_ended

bp = Blueprint("notices", __name__)


@bp.get("/notices/")
def index() -> str:
    """Every current notice, urgent and pinned first."""
    notices = get_store().notices()
    return render_template("residents/notices.html",
                           urgent=[n for n in notices if n.urgent],
                           notices=[n for n in notices if not n.urgent])


@bp.get("/notices/<notice_id>")
def show(notice_id: str) -> ResponseReturnValue:
    """One notice, laid out to print well (to pin on a noticeboard); 410 once it has ended."""
    notice = found(get_store().notice(notice_id))
    if has_ended(notice.expires_at):
        return ended_page(notice.title, _("This notice has ended."),
                          url_for("notices.index"), _("All notices"))
    return render_template("residents/notice.html", notice=notice)
