"""``meshhub post``: publish notices and listings from scripts (a council's outage feed).

Goes through the same Hub checks as the organisers' web forms.
"""

from __future__ import annotations

from datetime import datetime

import click

from node.cli.store_cmd import node_hub
from node.store.models import CATEGORIES


class ExpiryTime(click.ParamType):
    """An ISO date-time such as 2026-12-01T18:00 (local time unless an offset is given)."""

    name = "DATETIME"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date-time such as 2026-12-01T18:00", param, ctx)
        return int(moment.astimezone().timestamp())


_AS = click.option("--as", "actor", required=True, metavar="ORGANISER",
                   help="The organiser account acting (shown in the audit).")
_EXPIRES = click.option("--expires", type=ExpiryTime(), default=None,
                        help="When it stops showing, e.g. 2026-12-01T18:00 (local time).")


@click.group()
def post() -> None:
    """Publish a notice or a listing; prints the new item's id."""


@post.command("notice")
@_AS
@click.option("--title", required=True, help="At most 120 characters.")
@click.option("--body", required=True, help="Markdown, at most 5000 characters.")
@click.option("--urgent", is_flag=True, help="Shown first everywhere (water outage ...).")
@click.option("--pinned", is_flag=True, help="Kept near the top.")
@_EXPIRES
@click.pass_context
def post_notice(ctx: click.Context, actor: str, title: str, body: str, urgent: bool,
                pinned: bool, expires: int | None) -> None:
    """Publish a notice as ORGANISER."""
    with node_hub(ctx) as (_, hub):
        notice = hub.post_notice(actor, title=title, body=body, urgent=urgent, pinned=pinned,
                                 expires_at=expires)
    click.echo(notice.id)


@post.command("listing")
@_AS
@click.option("--category", required=True, type=click.Choice(CATEGORIES))
@click.option("--title", required=True, help="At most 120 characters.")
@click.option("--body", required=True, help="Markdown, at most 5000 characters.")
@click.option("--price", default="", help="Free text, e.g. '£20' or 'free'.")
@click.option("--contact", default="", help="How to get in touch.")
@click.option("--pinned", is_flag=True, help="Kept near the top.")
@_EXPIRES
@click.pass_context
def post_listing(ctx: click.Context, actor: str, category: str, title: str, body: str,
                 price: str, contact: str, pinned: bool, expires: int | None) -> None:
    """Publish a listing as ORGANISER."""
    with node_hub(ctx) as (_, hub):
        listing = hub.post_listing(actor, category=category, title=title, body=body,
                                   price=price, contact=contact, expires_at=expires,
                                   pinned=pinned)
    click.echo(listing.id)
