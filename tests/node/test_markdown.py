"""Markdown from organisers and residents is rendered, then sanitised (node.markdown)."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import pytest

from node.markdown import excerpt, render_html


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def test_formatting_survives() -> None:
    html = render_html("# Water\n\n**Bold**, *italic*, `code`\n\n- one\n- two\n\n> quote")
    assert "<h2>Water</h2>" in html  # under the page's own <h1>
    for tag in ("<strong>Bold</strong>", "<em>italic</em>", "<code>code</code>", "<li>one</li>",
                "<blockquote>"):
        assert tag in html


@pytest.mark.parametrize("source", [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<iframe src=//evil>",
    '<a href="#" onclick="alert(1)">x</a>', "<style>body{display:none}</style>",
    "<svg onload=alert(1)>", '<div style="background:url(//evil)">x</div>'])
def test_raw_html_is_shown_as_text_never_run(source: str) -> None:
    html = render_html(source)
    tags = _Tags()
    tags.feed(html)
    assert tags.found == [("p", [])], html  # only the paragraph; the rest is text
    assert "&lt;" in html


@pytest.mark.parametrize("link", ["javascript:alert(1)", "JaVaScRiPt:alert(1)",
                                  "vbscript:msgbox(1)", "data:text/html,<script>x</script>",
                                  "java\tscript:alert(1)", "&#106;avascript:alert(1)"])
def test_dangerous_links_are_dropped(link: str) -> None:
    html = render_html(f"[click]({link}) <{link}>")
    assert 'href="javascript' not in html.lower() and 'href="vbscript' not in html.lower()
    assert 'href="data:' not in html


def test_external_links_are_marked_and_images_never_load_remotely() -> None:
    html = render_html("[site](https://example.org) ![map](https://tiles.example/1.png) "
                           "![local](/library/abc/view) ![proto](//cdn.example/x.png)")
    assert '<a href="https://example.org" rel="nofollow noopener">site</a>' in html
    assert 'src="https://' not in html and 'src="//' not in html
    assert '<a href="https://tiles.example/1.png" rel="nofollow noopener">map</a>' in html
    assert '<img src="/library/abc/view" alt="local">' in html


def test_broken_markup_is_closed_and_safe() -> None:
    html = render_html("**unclosed *emphasis [link](http://x.org\n\n<b><i>tags</b>")
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert html.count("<p>") == html.count("</p>")


@pytest.mark.parametrize("source", ["a" * 1_000_000, "[" * 100_000, "> " * 100_000,
                                    "*a " * 50_000, "<" * 100_000, "- " * 50_000])
def test_huge_or_pathological_input_renders_quickly(source: str) -> None:
    started = time.thread_time()  # this thread's CPU time: what the machine's load leaves out
    render_html(source)
    assert time.thread_time() - started < 5


def test_empty_and_excerpt() -> None:
    assert render_html("") == "" and render_html(None) == ""
    assert excerpt("**Bold** <script>x</script> words " * 20, 40).endswith("…")
    assert excerpt("<b>x</b> **y**") == "<b>x</b> y"  # plain text; templates escape it
    assert excerpt("short") == "short"
