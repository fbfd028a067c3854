"""Notices: urgent and pinned first, expired ones hidden; each printable."""

from __future__ import annotations

from flask import Blueprint, render_template

from portal.db import found, get_store

bp = Blueprint("notices", __name__)


@bp.get("/notices/")
def index() -> str:
    """Every current notice, urgent and pinned first."""
    notices = get_store().notices()
    return render_template("residents/notices.html",
                           urgent=[n for n in notices if n.urgent],
                           notices=[n for n in notices if not n.urgent])


@bp.get("/notices/<notice_id>")
def show(notice_id: str) -> str:
    """One notice, laid out to print well (to pin on a noticeboard)."""
    return render_template("residents/notice.html", notice=found(get_store().notice(notice_id)))
