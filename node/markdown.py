"""Organisers' and residents' Markdown, rendered safely, once, when it is stored.

markdown-it-py (CommonMark, raw HTML off, linkify off) turns the text into
HTML, then nh3 (ammonia) keeps only an allow-list of tags and attributes.
Links may point anywhere (they are navigation, marked ``nofollow noopener``)
but a page never *loads* anything from elsewhere, nor a page of this node
that does something when fetched (``/language/ar`` switches the reader's
language): only a library file shown inline (``/library/<id>/view``) is an
image; any other image source is shown as a link instead.

The store calls :func:`render_html` and :func:`excerpt` when it derives a
view row (``node/store/views.py``) and keeps the results beside the Markdown
(what forums call the "cooked" text), so a page view never parses Markdown
and the portal's process does not carry the two libraries (3 MB of its
resident memory, bench/memory.py). Both are imported on first use.
:data:`RENDERER` names the rules; when they change, every stored rendering
is redone the next time the store is opened (:meth:`node.store.Store.open`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import nh3
    from markdown_it import MarkdownIt
    from markdown_it.renderer import RendererHTML
    from markdown_it.rules_core import StateCore
    from markdown_it.token import Token

#: The rendering rules' version: change it whenever the output for a text may change
#: (allowed tags, link handling, heading offset, excerpt length), so that stored
#: renderings are redone.
RENDERER = "markdown-it commonmark, nh3 allow-list, h2+, library images, excerpt 160: v2"
ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "img", "h2", "h3", "h4", "h5", "h6",
})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
#: The only image sources allowed: ``/library/<item id>/view`` (no query, no other path).
_LIBRARY_VIEW = re.compile(r"/library/[A-Za-z0-9_-]{1,64}/view")
#: Characters of plain text in an excerpt (lists of listings, notices, OPDS summaries).
EXCERPT_LENGTH = 160


def is_image_url(url: str) -> bool:
    """Whether ``url`` may be an image's source: a library file of this node, shown inline.

    Nothing else, not even another local page: an image is fetched by every
    reader's browser without a click, so its URL must have no effect.
    """
    return _LIBRARY_VIEW.fullmatch(url) is not None


def _render_image(renderer: RendererHTML, tokens: Sequence[Token], idx: int,
                  options: Any, env: Any) -> str:
    import html  # here: html.entities is 0.4 MB, and an idle agent renders nothing

    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    if is_image_url(src):
        return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'
    return f'<a href="{html.escape(src)}">{html.escape(alt or src)}</a>'


def _shift_headings(state: StateCore) -> None:
    """Move headings down so that they sit under the page's own ``<h1>``."""
    offset = int(state.env.get("heading_offset", 1))
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + offset)}"


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "src" and not is_image_url(value):
        return None
    return value


@functools.cache
def _tools() -> tuple[MarkdownIt, nh3.Cleaner, nh3.Cleaner]:
    """The parser, the sanitiser and a strip-everything cleaner (built once, on first use)."""
    import nh3
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.add_render_rule("image", _render_image)
    parser.core.ruler.push("shift_headings", _shift_headings)
    cleaner = nh3.Cleaner(
        tags=set(ALLOWED_TAGS), attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute, url_schemes=set(URL_SCHEMES),
        link_rel="nofollow noopener", strip_comments=True)
    return parser, cleaner, nh3.Cleaner(tags=set(), attributes={})


def render_html(text: str | None, heading_offset: int = 1) -> str:
    """``text`` as sanitised HTML, safe to put in a page as it is.

    ``heading_offset`` shifts headings down (``#`` becomes ``<h2>`` by
    default) so that a listing's body never competes with the page title.
    """
    if not text:
        return ""
    parser, cleaner, _strip = _tools()
    return cleaner.clean(parser.render(text, {"heading_offset": heading_offset}))


def excerpt(text: str | None, length: int = EXCERPT_LENGTH) -> str:
    """The first words of a Markdown text as plain text (to be escaped where shown)."""
    if not text:
        return ""
    parser, _cleaner, strip_all = _tools()
    import html  # as above

    plain = html.unescape(strip_all.clean(parser.render(text[: length * 4])))
    plain = " ".join(plain.split())
    if len(plain) <= length:
        return plain
    cut = plain[:length].rsplit(" ", 1)[0] or plain[:length]
    return cut + "…"
