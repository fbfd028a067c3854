"""The residents' side of the portal: one blueprint per area."""

from __future__ import annotations

from flask import Flask

from portal.residents import home, library, listings, notices, pages, report, search, submit

__all__ = ["register_residents"]


def register_residents(app: Flask) -> None:
    """Register every residents' blueprint on ``app``."""
    for module in (home, listings, notices, library, search, submit, report, pages):
        app.register_blueprint(module.bp)
