"""Organisers' and residents' Markdown, rendered safely.

markdown-it-py (CommonMark, raw HTML off, linkify off) turns the text into
HTML, then nh3 (ammonia) keeps only an allow-list of tags and attributes.
Links may point anywhere (they are navigation, marked ``nofollow noopener``)
but a page never *loads* anything from elsewhere: an image whose source is
not on this node is shown as a link instead.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import nh3
from flask import Flask
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markupsafe import Markup

ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "img", "h2", "h3", "h4", "h5", "h6",
})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


def is_local_url(url: str) -> bool:
    """Whether ``url`` points at this node (a path such as ``/library/x/file``)."""
    return url.startswith("/") and not url.startswith("//") and "\\" not in url


def _render_image(renderer: RendererHTML, tokens: Sequence[Token], idx: int,
                  options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    if is_local_url(src):
        return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'
    return f'<a href="{html.escape(src)}">{html.escape(alt or src)}</a>'


def _shift_headings(state: StateCore) -> None:
    """Move headings down so that they sit under the page's own ``<h1>``."""
    offset = int(state.env.get("heading_offset", 1))
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + offset)}"


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "src" and not is_local_url(value):
        return None
    return value


def _build_parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.add_render_rule("image", _render_image)
    parser.core.ruler.push("shift_headings", _shift_headings)
    return parser


_PARSER = _build_parser()
_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS), attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
    attribute_filter=_filter_attribute, url_schemes=set(URL_SCHEMES),
    link_rel="nofollow noopener", strip_comments=True)
_STRIP_ALL = nh3.Cleaner(tags=set(), attributes={})


def render_markdown(text: str | None, heading_offset: int = 1) -> Markup:
    """``text`` as sanitised HTML, safe to put in a page.

    ``heading_offset`` shifts headings down (``#`` becomes ``<h2>`` by
    default) so that a listing's body never competes with the page title.
    """
    if not text:
        return Markup("")
    rendered = _PARSER.render(text, {"heading_offset": heading_offset})
    return Markup(_CLEANER.clean(rendered))  # noqa: S704 - sanitised by nh3 just above


def excerpt(text: str | None, length: int = 160) -> str:
    """The first words of a Markdown text as plain text (for lists of items)."""
    if not text:
        return ""
    plain = html.unescape(_STRIP_ALL.clean(_PARSER.render(text[: length * 4])))
    plain = " ".join(plain.split())
    if len(plain) <= length:
        return plain
    cut = plain[:length].rsplit(" ", 1)[0] or plain[:length]
    return cut + "…"


def init_app(app: Flask) -> None:
    """Make ``|markdown`` and ``|excerpt`` available in templates."""
    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.filters["excerpt"] = excerpt
