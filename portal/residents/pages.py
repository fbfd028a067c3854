"""The fixed pages: house rules, privacy notice, contacting the organisers, and about this
network."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("pages", __name__)


@bp.get("/rules")
def rules() -> str:
    """The house rules residents accept when they join."""
    return render_template("residents/rules.html")


@bp.get("/privacy")
def privacy() -> str:
    """What the hub stores about residents, and for how long."""
    config = current_app.config["NODE_CONFIG"]
    return render_template("residents/privacy.html",
                           retention_days=config.privacy.submission_retention_days)


@bp.get("/contact")
def contact() -> str:
    """How to reach the organisers (``portal.contact`` in node.toml)."""
    config = current_app.config["NODE_CONFIG"]
    return render_template("residents/contact.html", lines=config.portal.contact)


@bp.get("/about")
def about() -> str:
    """This node, its community, and what the mesh is."""
    return render_template("residents/about.html")
