"""The portal renders Markdown in a child process (node.markdown.render_in_child); the agent
renders none (tests/node/test_agent_process.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import node.markdown as markdown

TEXTS = ["# Water\n\n**Off** on *Tuesday*, see [the notice](/notices/1).",
         "<script>alert(1)</script> ![x](http://elsewhere/x.png) plain " + "word " * 80,
         "نص **عربي**"]


@pytest.fixture
def in_child() -> Iterator[None]:
    markdown.render_in_child()
    try:
        yield
    finally:
        markdown.render_in_child(False)
        markdown._CHILD._close()


def _here() -> list[tuple[str, str]]:
    return [(markdown.render_html(t, 2), markdown.excerpt(t)) for t in TEXTS]


def test_the_child_renders_exactly_as_here(in_child: None) -> None:
    from_child = _here()
    assert markdown._CHILD._process is not None  # the child really answered
    markdown.render_in_child(False)
    assert from_child == _here()
    assert "<script>" not in from_child[1][0] and "<h3>Water</h3>" in from_child[0][0]


def test_the_child_exits_when_idle(in_child: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(markdown, "CHILD_IDLE_SECONDS", 0.2)
    markdown.render_html("a first *post*")
    process = markdown._CHILD._process
    assert process is not None
    assert process.wait(timeout=10) == 0  # closed for being idle, not killed
    assert markdown.render_html("a *second*") == "<p>a <em>second</em></p>\n"  # a new child


def test_a_failing_child_falls_back_to_rendering_here(in_child: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(markdown.sys, "executable", "/nonexistent/python")
    assert markdown.render_html("**still**") == "<p><strong>still</strong></p>\n"
    monkeypatch.undo()
    # The libraries are loaded here now: no child is started again for the next text.
    assert markdown.render_html("*next*") == "<p><em>next</em></p>\n"
    assert markdown._CHILD._process is None


def test_a_process_rendering_in_a_child_never_loads_the_libraries() -> None:
    code = ("import sys, node.markdown as m; m.render_in_child(); "
            "print(m.render_html('**a**'), m.excerpt('b *c*')); "
            "print(sorted(n for n in sys.modules if n.startswith(('markdown_it', 'nh3'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.splitlines() == ["<p><strong>a</strong></p>", " b c", "[]"], out

