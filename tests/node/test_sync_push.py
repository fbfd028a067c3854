"""A notification that carries the new entries (``POST /sync/v1/push``): a hop is one
request instead of four, and a pushed entry is checked as a pulled one is."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.waiting import wait_for
from node import markdown
from node.agent_client import AgentError
from node.identity import Identity
from node.store import views
from node.store.store import unrendered_left
from node.sync import protocol
from node.sync.client import PeerClient
from tests.node.test_store_support import dump_views
from tests.node.test_sync_support import (
    FAST,
    Node,
    WSGIApp,
    idle,
    link,
    make_node,
    nodes,
    notice,
)


class Requests:
    """WSGI middleware that records each sync request's path; answers 404 to ``/push``
    when ``old`` (as a node of an earlier release does)."""

    def __init__(self, *, old: bool = False) -> None:
        self.paths: list[str] = []
        self.old = old
        self._lock = threading.Lock()

    def __call__(self, app: WSGIApp) -> WSGIApp:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]
                    ) -> Iterable[bytes]:
            path = environ["PATH_INFO"].removeprefix(protocol.PREFIX)
            with self._lock:
                self.paths.append(path)
            if self.old and path == "/push":
                start_response("404 Not Found", [("Content-Type", "application/json"),
                                                 ("Content-Length", "2")])
                return [b"{}"]
            return app(environ, start_response)
        return wrapped

    def since(self, start: int) -> list[str]:
        with self._lock:
            return self.paths[start:]


def line(tmp_path: Path, old: str = "") -> tuple[dict[str, Node], dict[str, Requests]]:
    """A-B-C, each served through a :class:`Requests` (``old``: the nodes that answer
    ``/push`` with 404), started, their first rounds over; periodic rounds an hour apart."""
    idents = {n: Identity.generate() for n in "ABC"}
    seen = {n: Requests(old=n in old) for n in "ABC"}
    made = {n: make_node(tmp_path, n, idents[n], idents.values(), wrap=seen[n]) for n in "ABC"}
    link(made["A"], made["B"])
    link(made["B"], made["C"])
    for node in made.values():
        node.service.start()
    wait_for("the first rounds, every neighbour told",
             lambda: all(n.service.rounds >= len(n.peer_list) and told(n)
                         for n in made.values()) and idle(*made.values()), timeout=30)
    return made, seen


def told(node: Node) -> bool:
    """Whether each of ``node``'s neighbours knows its digest (a first notification that
    failed under load is repeated once the neighbour is no longer backed off)."""
    digest, service = node.store.digest(), node.service
    return all(digest in (service._notified.get(u), service._heard.get(u))
               for u in node.peer_list)


@pytest.fixture
def abc(tmp_path: Path) -> Iterator[tuple[dict[str, Node], dict[str, Requests]]]:
    made, seen = line(tmp_path)
    try:
        yield made, seen
    finally:
        for node in made.values():
            node.close()


def test_a_post_crosses_each_hop_in_one_request(
        abc: tuple[dict[str, Node], dict[str, Requests]]) -> None:
    made, seen = abc
    a, b, c = made["A"], made["B"], made["C"]
    start = {n: len(seen[n].paths) for n in "ABC"}
    post = a.store.append("notice.post", notice("Pushed"), actor="ada")
    wait_for("the notice on C", lambda: c.store.notice(post["id"]) is not None, timeout=30)
    wait_for("quiet", lambda: idle(a, b, c), timeout=30)
    # B was handed the entry by A, C by B; nobody pulled (digest, vector, entries), and
    # nobody told the node it got the entry from what that node had just told it.
    assert seen["B"].since(start["B"]) == ["/push"]
    assert seen["C"].since(start["C"]) == ["/push"]
    assert seen["A"].since(start["A"]) == []
    assert a.store.digest() == b.store.digest() == c.store.digest()


def test_an_older_node_is_told_and_pulls(tmp_path: Path) -> None:
    made, seen = line(tmp_path, old="B")
    try:
        a, b, c = made["A"], made["B"], made["C"]
        start = len(seen["A"].paths)
        post = a.store.append("notice.post", notice("For an old node"), actor="ada")
        wait_for("the notice on C", lambda: c.store.notice(post["id"]) is not None,
                 timeout=30)
        assert b.store.notice(post["id"]) is not None
        # B (an earlier release) answered /push with 404: A told it with /notify, and
        # B pulled from A as before.
        assert b.url in a.service._no_push
        assert "/entries" in seen["A"].since(start)
    finally:
        for node in made.values():
            node.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Identity, Identity]]:
    """B (served), trusting A and itself; A's identity signs the test's pushes; U is
    registered nowhere."""
    ida, idb, idu = Identity.generate(), Identity.generate(), Identity.generate()
    b = make_node(tmp_path, "B", idb, [ida])
    src = make_node(tmp_path, "A", ida, [idb, idu], serve=False)
    try:
        yield b, ida, idu
    finally:
        src.close()
        b.close()


def signed_entries(tmp_path: Path, identity: Identity, count: int) -> list[dict[str, Any]]:
    """``count`` notices signed by ``identity`` (from a store of its own)."""
    node = make_node(tmp_path, f"src-{identity.public_key[:8]}", identity, [], serve=False)
    try:
        return [node.store.append("notice.post", notice(f"N{i}"), actor="ada")
                for i in range(count)]
    finally:
        node.close()


def push(b: Node, identity: Identity, entries: list[dict[str, Any]], *,
         digest: str = "0" * 16, registry: int | None = None) -> bool | None:
    client = PeerClient(b.url, timeout=5, identity=identity)
    return client.push(digest, None, registry, entries)


def test_a_pushed_entry_with_a_bad_signature_is_refused_and_counted(
        tmp_path: Path, pair: tuple[Node, Identity, Identity],
        caplog: pytest.LogCaptureFixture) -> None:
    b, ida, _ = pair
    (entry,) = signed_entries(tmp_path, ida, 1)
    bad = copy.deepcopy(entry)
    bad["body"]["title"] = "Forged"
    bad["header"]["body_hash"] = "0" * 64
    with caplog.at_level(logging.WARNING, logger="meshhub.sync"), \
            pytest.raises(AgentError, match=r"HTTP 400.*refused"):
        push(b, ida, [bad])
    assert b.store.vector() == {}
    assert any("pushed an entry that was refused" in r.getMessage() for r in caplog.records)
    assert b.service.status()["problems"] == {f"push:{ida.public_key}": 1}
    with pytest.raises(AgentError, match="HTTP 400"):
        push(b, ida, [bad])
    assert b.service.status()["problems"] == {f"push:{ida.public_key}": 2}  # counted


def test_a_burst_of_pushes_that_leave_nothing_to_pull_is_not_rate_limited(
        tmp_path: Path, pair: tuple[Node, Identity, Identity]) -> None:
    """Every node posting at once makes each neighbour push many times within seconds:
    only a push that makes the receiver pull counts against the sender's rate."""
    b, ida, _ = pair
    src = make_node(tmp_path, "src", ida, [], serve=False)
    try:
        for i in range(FAST.notify_burst + 5):
            entry = src.store.append("notice.post", notice(f"Burst {i}"), actor="ada")
            assert push(b, ida, [entry], digest=src.store.digest()) is False
        assert b.store.vector() == src.store.vector()
    finally:
        src.close()


def test_entries_that_must_wait_are_not_stored_but_pulled(
        tmp_path: Path, pair: tuple[Node, Identity, Identity]) -> None:
    b, ida, idu = pair
    first, second = signed_entries(tmp_path, ida, 2)
    (stranger,) = signed_entries(tmp_path, idu, 1)
    # The second without the first (a gap) and an unregistered author's: neither is
    # stored; B answers that it will pull (from nobody here: the push gave no port).
    assert push(b, ida, [second, stranger]) is True
    assert b.store.vector() == {}
    assert push(b, ida, [first, second]) is True  # the digest given is not B's
    assert b.store.vector() == {ida.public_key: 2}
    assert b.store.notice(first["id"]) is not None


def test_a_newer_registry_is_fetched_before_pushed_entries_are_taken(
        tmp_path: Path, pair: tuple[Node, Identity, Identity]) -> None:
    b, ida, _ = pair

    class Registry:
        serial = 3

    b.service.registry = Registry()  # type: ignore[assignment]
    (entry,) = signed_entries(tmp_path, ida, 1)
    assert push(b, ida, [entry], registry=4) is True
    assert b.store.vector() == {}


@pytest.mark.parametrize(("body", "status"), [
    (b'{"digest": "0000000000000000", "registry": null, "entries": []}', "400"),
    (b'{"digest": "0000000000000000", "registry": null, "entries": [{}], "x": 1}', "400"),
    (b'{"digest": "0000000000000000", "registry": null, "entries": ['
     + b",".join([b"{}"] * (protocol.MAX_PUSH_ENTRIES + 1)) + b"]}", "400"),
    (b'{"digest": "0000000000000000", "registry": null, "entries": [{"pad": "'
     + b"x" * protocol.MAX_PUSH_BYTES + b'"}]}', "413"),
])
def test_malformed_or_oversized_pushes_are_refused(
        pair: tuple[Node, Identity, Identity], body: bytes, status: str) -> None:
    b, ida, _ = pair
    client = PeerClient(b.url, timeout=5, identity=ida)
    with client.exchange("POST", "/push", body, {"Content-Type": protocol.JSON_TYPE}) as answer:
        client.read(answer, "POST /push", protocol.MAX_SMALL_BYTES)
        assert str(answer.status) == status
    assert b.store.vector() == {}


def test_unsigned_pushes_from_elsewhere_are_refused(
        tmp_path: Path, pair: tuple[Node, Identity, Identity]) -> None:
    _b, ida, _ = pair
    (entry,) = signed_entries(tmp_path, ida, 1)
    guarded = make_node(tmp_path, "G", Identity.generate(), [ida], is_local=lambda _a: False)
    try:
        client = PeerClient(guarded.url, timeout=5)  # no identity: nothing signed
        with pytest.raises(AgentError, match="401"):
            client.push("0" * 16, None, None, [entry])
        assert guarded.store.vector() == {}
    finally:
        guarded.close()


def test_relaying_nodes_render_nothing_and_leave_the_post_to_their_portal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent never shows a post: it stores a replicated one with its stand-in and lists
    it; the portal renders it (portal/rendering.py). Rendering at every hop cost a Python
    start-up per post and node (a child process): on a 200-node lab posts took a minute."""
    rendered_by: list[str] = []
    real = views.render_html

    def noted(text: str | None, heading_offset: int = 1) -> str:
        rendered_by.append(threading.current_thread().name)
        return real(text, heading_offset)

    monkeypatch.setattr(views, "render_html", noted)
    with nodes(tmp_path, "ABC") as made:
        a, b, c = made["A"], made["B"], made["C"]
        link(a, b)
        link(b, c)
        for node in made.values():
            node.service.start()
        post = a.store.append("notice.post", notice("Urgent", "**Water** off, [map](/about)"),
                              actor="ada")
        assert rendered_by == ["MainThread"]  # A's own post, rendered as it is stored
        wait_for("the notice on C", lambda: c.store.notice(post["id"]) is not None,
                 timeout=10)
        wait_for("every node idle", lambda: idle(a, b, c), timeout=10)
        assert rendered_by == ["MainThread"], "a sync thread rendered Markdown"
        for relay in (b, c):
            shown = relay.store.notice(post["id"])
            assert shown is not None and "**Water** off" in shown.body_html  # the stand-in
            assert unrendered_left(relay.store._conn())
        # What the portal does (portal.rendering): then C shows what A shows.
        assert c.store.render_pending() == 1 and c.store.render_pending() == 0
        shown = c.store.notice(post["id"])
        assert shown is not None and "<strong>Water</strong>" in shown.body_html
        assert '<a href="/about"' in shown.body_html
        assert not unrendered_left(c.store._conn())
        assert dump_views(a.store) == dump_views(c.store)


def test_the_stand_in_is_escaped_text() -> None:
    html, excerpt = markdown.stand_in("a <script>x</script> & \"b\"\n\nsecond *para*")
    assert html == ("<p>a &lt;script&gt;x&lt;/script&gt; &amp; &quot;b&quot;</p>"
                    "<p>second *para*</p>")
    assert excerpt == 'a <script>x</script> & "b" second *para*'


def test_a_commit_seen_a_moment_after_the_kernel_said_is_not_left_for_the_poll(
        tmp_path: Path) -> None:
    """The kernel reports SQLite's last write to the WAL before the commit is visible:
    the first look finds nothing; the next ones, soon after, find it (not after
    ``watch_seconds``, here 20 s)."""
    slow_poll = FAST.__class__(**{**FAST.__dict__, "watch_seconds": 20.0})
    with nodes(tmp_path, "AB", slow_poll) as made:
        a, b = made["A"], made["B"]
        link(a, b)
        for node in made.values():
            node.service.start()
        wait_for("the first rounds", lambda: all(n.service.rounds >= 1 for n in made.values())
                 and idle(a, b), timeout=30)
        with a.store.batch() as add:  # another writer's transaction, not yet committed
            post = add("notice.post", notice("From the portal"), actor="ada")
            a.service.local_change()  # what the kernel's report of the write does
            wait_for("A's first look", lambda: a.service._look_again is not None,
                     timeout=10, interval=0.001)
        started = time.monotonic()
        wait_for("the notice on B", lambda: b.store.notice(post["id"]) is not None,
                 timeout=10)
        assert time.monotonic() - started < 5


def test_a_full_disk_while_taking_a_push_changes_nothing_and_pulls_later(
        tmp_path: Path, pair: tuple[Node, Identity, Identity],
        caplog: pytest.LogCaptureFixture) -> None:
    b, ida, _ = pair
    conn = b.store._conn()  # this thread's connection: the push below ingests through it
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's "database or disk is full"
    big = make_node(tmp_path, "big", ida, [], serve=False)
    try:
        wire = big.store.append("notice.post", notice("Big", "x" * 4_900), actor="ada")
    finally:
        big.close()
    with caplog.at_level(logging.WARNING, logger="meshhub.sync"):
        answer = b.service.received_push(ida.public_key, None, protocol.Push(
            "0" * 16, None, None, [wire]))
    assert answer is True  # not the sender's fault: this node pulls later
    assert "database or disk is full" in caplog.text
    assert b.store.vector() == {}
    conn.execute("PRAGMA max_page_count = 1073741823")


def test_a_post_passing_through_lists_the_neighbours_once(
        abc: tuple[dict[str, Node], dict[str, Requests]]) -> None:
    """As in an agent, B's store folder is watched: every entry it takes makes the kernel
    report a write, and B looks for another process's commit then and a few times soon
    after (10, 50, 200 ms). Those looks find B's own commit, already told: they neither
    list the neighbours (babeld's state and zeroconf, in an agent) nor tell anyone, so a
    post passing through B lists them once (twice when a look comes first)."""
    from node.scheduler import Scheduler

    made, _requests = abc
    a, b, c = made["A"], made["B"], made["C"]
    listed: list[float] = []
    b.service.add_peer_source(lambda: listed.append(time.monotonic()) or [])
    store = Path(str(b.store.path))
    watcher = Scheduler("test-store-watch")
    assert watcher.watch(store.parent, lambda _names: b.service.local_change(), "store-watch",
                         names={store.name, f"{store.name}-wal"}, poll_seconds=None)
    b.service.watched(3600)  # as the agent does: no regular look, only the reports
    watcher.start()
    try:
        # The regular look already due (every 20 ms until now) lists them, once more.
        wait_for("B's last regular look", lambda: listed and idle(a, b, c), timeout=30)
        for title in ("First", "Second", "Third"):
            start = len(listed)
            post = a.store.append("notice.post", notice(title), actor="ada")["id"]
            wait_for("the notice on C", lambda p=post: c.store.notice(p) is not None,
                     timeout=30)
            wait_for("B's looks after the post",
                     lambda: b.service._look_again is None and idle(a, b, c), timeout=30)
            assert 1 <= len(listed) - start <= 2, (title, len(listed) - start)
    finally:
        watcher.stop()
    assert a.store.digest() == b.store.digest() == c.store.digest()
