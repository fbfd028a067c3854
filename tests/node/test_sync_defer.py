"""Pushes that cross (docs/replication.md §4): a neighbour that got an author's previous
post from elsewhere, and pushed it to this node before being told it, is given
``defer_seconds`` to push the next one too before this node pushes to it. In a grid two
neighbours that got a post at about the same time pushed it to each other: two requests
on a link where one does. A neighbour that does not push it in time is pushed to then."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.waiting import wait_for
from node.agent_auth import CALLER_KEY
from node.identity import Identity
from node.sync import protocol
from tests.node.test_sync_push import push, told
from tests.node.test_sync_support import FAST, Node, WSGIApp, idle, link, make_node, notice


class Pushes:
    """WSGI middleware that records who pushed to its node (their key), and holds a push
    from ``slow_from`` for ``hold`` seconds before handling it (a neighbour's push on its
    way, or waiting for a busy processor)."""

    def __init__(self) -> None:
        self.senders: list[str | None] = []
        self.slow_from: str | None = None
        self.hold = 0.3
        self._lock = threading.Lock()

    def __call__(self, app: WSGIApp) -> WSGIApp:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]
                    ) -> Iterable[bytes]:
            if environ["PATH_INFO"].removeprefix(protocol.PREFIX) == "/push":
                sender = environ.get(CALLER_KEY)
                with self._lock:
                    self.senders.append(sender)
                if sender is not None and sender == self.slow_from:
                    time.sleep(self.hold)
            return app(environ, start_response)
        return wrapped

    def count(self, sender: str, start: int = 0) -> int:
        with self._lock:
            return sum(1 for s in self.senders[start:] if s == sender)

    def total(self) -> int:
        with self._lock:
            return len(self.senders)


@pytest.fixture
def xy(tmp_path: Path) -> Iterator[tuple[Node, Node, Node, dict[str, Pushes]]]:
    """X and Y, neighbours, each served through :class:`Pushes`, started and quiet; A, the
    author, is neighbour of neither: the test hands A's posts to them (``push``)."""
    ida, idx, idy = Identity.generate(), Identity.generate(), Identity.generate()
    seen = {"X": Pushes(), "Y": Pushes()}
    x = make_node(tmp_path, "X", idx, [ida, idy], wrap=seen["X"])
    y = make_node(tmp_path, "Y", idy, [ida, idx], wrap=seen["Y"])
    a = make_node(tmp_path, "A", ida, [], serve=False)
    link(x, y)
    try:
        for node in (x, y):
            node.service.start()
        wait_for("the first rounds", lambda: all(
            n.service.rounds >= 1 and told(n) for n in (x, y)) and idle(x, y), timeout=30)
        yield x, y, a, seen
    finally:
        for node in (x, y, a):
            node.close()


def hand(a: Node, *targets: Node) -> dict[str, Any]:
    """A new post of A's, pushed by A to each of ``targets`` at the same moment."""
    entry = a.store.append("notice.post", notice(f"From A {time.monotonic()}"), actor="ada")
    digest = a.store.digest()
    threads = [threading.Thread(target=push, args=(t, a.identity, [entry]),
                                kwargs={"digest": digest}) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return entry


def test_a_neighbour_that_pushed_the_authors_last_post_first_is_not_pushed_the_next(
        xy: tuple[Node, Node, Node, dict[str, Pushes]]) -> None:
    x, y, a, seen = xy
    key_x, key_y = x.identity.public_key, y.identity.public_key
    # Each neighbour's push reaches the other 0.3 s late: both push before either hears.
    seen["X"].slow_from, seen["Y"].slow_from = key_y, key_x
    # A's first post reaches Y only; Y pushes it to X, before X could tell Y anything.
    first = hand(a, y)
    wait_for("the first post on X", lambda: x.store.notice(first["id"]) is not None, timeout=30)
    wait_for("quiet", lambda: idle(x, y), timeout=30)
    assert seen["X"].count(key_y) == 1 and seen["Y"].count(key_x) == 0
    start = {n: seen[n].total() for n in "XY"}
    # The next reaches both at once. Before, each pushed it to the other (two requests
    # for a link that needs none); now X waits for Y's push, which comes, and sends none.
    second = hand(a, x, y)
    wait_for("quiet", lambda: idle(x, y) and all(
        n.store.notice(second["id"]) is not None for n in (x, y)), timeout=30)
    between = seen["X"].count(key_y, start["X"]) + seen["Y"].count(key_x, start["Y"])
    assert seen["Y"].count(key_x, start["Y"]) == 0, "X pushed Y what Y was pushing it"
    assert between == 1
    assert x.store.digest() == y.store.digest() == a.store.digest()


def test_a_neighbour_expected_to_push_that_does_not_is_pushed_to_after_the_wait(
        xy: tuple[Node, Node, Node, dict[str, Pushes]]) -> None:
    """The guarantee: Y got A's posts from elsewhere, then that way is gone (a link
    down, a node off). X holds its push back for Y a moment only: Y gets the post from X
    a second later, not at the next periodic round (an hour here), and the post after
    that at once."""
    x, y, a, seen = xy
    key_x = x.identity.public_key
    first = hand(a, y)
    wait_for("the first post on X", lambda: x.store.notice(first["id"]) is not None, timeout=30)
    wait_for("quiet", lambda: idle(x, y), timeout=30)
    # From now on only X gets A's posts.
    handed = time.monotonic()
    second = hand(a, x)
    wait_for("the second post on Y", lambda: y.store.notice(second["id"]) is not None,
             timeout=30)
    waited = time.monotonic() - handed
    assert seen["Y"].count(key_x) == 1  # from X, after its wait
    assert FAST.defer_seconds * 0.9 <= waited < FAST.defer_seconds + 10
    wait_for("quiet", lambda: idle(x, y), timeout=30)
    # Y did not push it: X no longer waits for Y.
    assert y.url not in x.service._upstream.get(a.identity.public_key, set())
    handed = time.monotonic()
    third = hand(a, x)
    wait_for("the third post on Y", lambda: y.store.notice(third["id"]) is not None,
             timeout=30)
    assert seen["Y"].count(key_x) == 2
    assert time.monotonic() - handed < waited
    wait_for("quiet", lambda: idle(x, y), timeout=30)
    assert x.store.digest() == y.store.digest() == a.store.digest()
