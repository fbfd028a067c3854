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
(what forums call the "cooked" text), so a page view never parses Markdown.
Both libraries are imported on first use.

Who renders: the process that stores a text, except the agent. An organiser's
post is rendered by the portal as it is stored; a post that arrives by
replication is stored by the agent with a plain stand-in (:func:`stand_in`) and
rendered by the portal (``portal/rendering.py``, at its start and after every
commit). The agent never shows a post, and rendering there cost every agent a
Python start-up per post (the child below): 200 start-ups per post on a 200-node
lab on two processors, whose posts then took a minute to cross it (docs/scale.md).
The portal, a long-lived process, calls :func:`render_in_child` at start: its
texts are then rendered by a child process (``python -m node.markdown``), started
for a post and gone once idle for :data:`CHILD_IDLE_SECONDS`, so it does not carry
the two libraries (2.8 MB of its resident memory for good after the first post,
bench/memory.py). Short-lived commands (``meshhub post``, ``store rebuild``)
render in their own process.

:data:`RENDERER` names the rules; when they change, every stored rendering
is redone the next time the store is opened (:meth:`node.store.Store.open`; by the
portal, as the agent opens it with stand-ins).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

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
#: A rendering child with nothing to do for this long exits (see :func:`render_in_child`).
CHILD_IDLE_SECONDS = 10.0
#: Seconds a child may take to answer one text (its start included) before it is given up.
CHILD_TIMEOUT_SECONDS = 30.0

log = logging.getLogger(__name__)


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
    if _CHILD.enabled:
        return _CHILD.render(text, heading_offset)[0]
    return _render_here(text, heading_offset)


def stand_in(text: str | None, length: int = EXCERPT_LENGTH) -> tuple[str, str]:
    """A plain rendering of ``text`` without either library: (HTML, excerpt).

    The agent stores a replicated post with this (``node/store/views.py``,
    :func:`~node.store.views.rendering_later`) and the portal renders its Markdown
    (``portal/rendering.py``): the text escaped, its paragraphs kept, nothing
    interpreted, so it is safe to show until the rendering replaces it.
    """
    if not text:
        return "", ""
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    html = "".join(f"<p>{_escape(p)}</p>" for p in paragraphs)
    plain = " ".join(text.split())
    if len(plain) > length:
        plain = (plain[:length].rsplit(" ", 1)[0] or plain[:length]) + "…"
    return html, plain


def _escape(text: str) -> str:
    """``text`` safe inside an element or an attribute (``html.escape``'s rules, without
    importing ``html``: its entity table is 0.4 MB, see :func:`_render_image`)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#x27;"))


def _render_here(text: str, heading_offset: int) -> str:
    parser, cleaner, _strip = _tools()
    return cleaner.clean(parser.render(text, {"heading_offset": heading_offset}))


def excerpt(text: str | None, length: int = EXCERPT_LENGTH) -> str:
    """The first words of a Markdown text as plain text (to be escaped where shown)."""
    if not text:
        return ""
    if _CHILD.enabled and length == EXCERPT_LENGTH:
        return _CHILD.render(text, 1)[1]
    return _excerpt_here(text, length)


def _excerpt_here(text: str, length: int) -> str:
    parser, _cleaner, strip_all = _tools()
    import html  # as above

    plain = html.unescape(strip_all.clean(parser.render(text[: length * 4])))
    plain = " ".join(plain.split())
    if len(plain) <= length:
        return plain
    cut = plain[:length].rsplit(" ", 1)[0] or plain[:length]
    return cut + "…"


class _Child:
    """A ``python -m node.markdown`` child answering one JSON line per text, kept while used.

    One text's HTML and excerpt come back together, and the last answer is kept,
    so a view row (which asks for both) costs one round trip. The child ends when
    its pipe closes: after :data:`CHILD_IDLE_SECONDS` without a text, or when the
    process exits. Should it fail, the text is rendered here instead, and so are
    all later ones (the libraries then stay loaded: correct output first).
    """

    def __init__(self) -> None:
        self.enabled = False
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._last: tuple[str, int, tuple[str, str]] | None = None
        self._used = 0.0

    def render(self, text: str, heading_offset: int) -> tuple[str, str]:
        """(HTML, excerpt) of ``text``, from the child."""
        with self._lock:
            if self._last is not None and self._last[:2] == (text, heading_offset):
                return self._last[2]
            try:
                answer = self._ask(text, heading_offset)
            except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError) as error:
                log.warning("Markdown renderer child failed (%s): rendering in this process "
                            "from now on", error)
                self._close()
                # The libraries are loaded here now: a child would only add a start-up
                # per text (and under heavy load it may again be killed at the timeout
                # and its work done twice).
                self.enabled = False
                answer = (_render_here(text, heading_offset), _excerpt_here(text, EXCERPT_LENGTH))
            self._last = (text, heading_offset, answer)
            self._used = time.monotonic()
            return answer

    def _ask(self, text: str, heading_offset: int) -> tuple[str, str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "node.markdown"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, encoding="utf-8")
            threading.Thread(target=self._close_when_idle, args=(self._process,),
                             name="meshhub-markdown-idle", daemon=True).start()
        stdin, stdout = _pipes(self._process)
        stdin.write(json.dumps({"text": text, "heading_offset": heading_offset}) + "\n")
        stdin.flush()
        ready = threading.Timer(CHILD_TIMEOUT_SECONDS, self._process.kill)
        ready.start()
        try:
            line = stdout.readline()
        finally:
            ready.cancel()
        if not line:
            raise ValueError("the child closed its output")
        answer = json.loads(line)
        return str(answer["html"]), str(answer["excerpt"])

    def _close_when_idle(self, process: subprocess.Popen[str]) -> None:
        while process.poll() is None:
            time.sleep(CHILD_IDLE_SECONDS / 4)
            with self._lock:
                if process is not self._process:
                    return
                if time.monotonic() - self._used >= CHILD_IDLE_SECONDS:
                    self._close()
                    return

    def _close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            _pipes(process)[0].close()
            process.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()


def _pipes(process: subprocess.Popen[str]) -> tuple[IO[str], IO[str]]:
    if process.stdin is None or process.stdout is None:
        raise ValueError("the child has no pipes")
    return process.stdin, process.stdout


_CHILD = _Child()


def render_in_child(enabled: bool = True) -> None:
    """From now on, render this process's texts in a child process (the portal calls
    this at start: see the module's docstring); ``False`` renders here again."""
    _CHILD.enabled = enabled


def _serve_child() -> None:
    """The child's side: one JSON line in (``text``, ``heading_offset``), one out
    (``html``, ``excerpt``), until the parent closes the pipe."""
    for line in sys.stdin:
        request = json.loads(line)
        text = str(request["text"])
        offset = int(request["heading_offset"])
        sys.stdout.write(json.dumps({"html": render_html(text, offset),
                                     "excerpt": excerpt(text)}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve_child()
