"""Three nodes in a line A-B-C on loopback: push-on-change, idle cost, library files."""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.waiting import wait_for
from node.identity import Identity
from tests.node.test_store_support import dump_views
from tests.node.test_sync_support import (
    FAST,
    Node,
    WSGIApp,
    add_file,
    fake_pdf,
    idle,
    link,
    make_node,
    nodes,
    notice,
    portals_render,
)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[dict[str, Node]]:
    """A-B-C started, their first rounds (one pull from each neighbour) over: from here
    on, with periodic rounds an hour apart, only a push makes a node pull."""
    with nodes(tmp_path, "ABC") as made:
        link(made["A"], made["B"])
        link(made["B"], made["C"])
        for node in made.values():
            node.service.start()
        wait_for("the first rounds",
                 lambda: all(n.service.rounds >= len(n.peer_list) for n in made.values())
                 and idle(*made.values()), timeout=30)
        yield made


def converged(*members: Node) -> bool:
    return len({n.store.digest() for n in members}) == 1


def test_a_post_on_a_reaches_c_through_b_by_push(line: dict[str, Node]) -> None:
    a, b, c = line["A"], line["B"], line["C"]
    # Periodic rounds are an hour apart and the first ones were over before the first
    # post: a notice on C within this wait came by push. How fast depends on the machine's
    # load (bench/scale_sync.py measures it on a real mesh); the test only prints it.
    within = FAST.interval_seconds / 100
    took = []
    for i in range(5):
        start = time.monotonic()
        post = a.store.append("notice.post", notice(f"Notice {i}"), actor="ada")
        wait_for("the notice on C",
                 lambda post=post: c.store.notice(post["id"]) is not None, timeout=within,
                 interval=0.005)  # fine-grained: the latency is printed
        took.append(time.monotonic() - start)
    print(f"\n2-hop post latency on loopback: median {statistics.median(took) * 1000:.0f} ms, "
          f"max {max(took) * 1000:.0f} ms")
    wait_for("convergence", lambda: converged(a, b, c), timeout=30)
    # B and C's agents store the Markdown with a stand-in: the views are the same once
    # their portals rendered it.
    wait_for("the same views", lambda: portals_render(b, c) and dump_views(a.store)
             == dump_views(b.store) == dump_views(c.store), timeout=30)


def test_a_burst_of_posts_costs_few_rounds(line: dict[str, Node]) -> None:
    a, b, c = line["A"], line["B"], line["C"]
    rounds_before = b.service.rounds
    with a.store.batch() as add:
        for i in range(50):
            add("notice.post", notice(f"Burst {i}"), actor="ada")
    wait_for("convergence", lambda: converged(a, b, c), timeout=30)
    wait_for("the last rounds the burst caused", lambda: idle(a, b, c), timeout=30)
    assert b.service.rounds - rounds_before <= 6
    assert len(c.store.notices()) == 50


def test_nodes_that_agree_exchange_only_the_digest(line: dict[str, Node]) -> None:
    a, b, c = line["A"], line["B"], line["C"]
    a.store.append("notice.post", notice(), actor="ada")
    c.store.append("notice.post", notice("From C"), actor="ada")
    wait_for("convergence", lambda: converged(a, b, c), timeout=30)
    sizes = []
    for _ in range(3):
        result = a.service.pull_from(b.url)
        assert result.outcome == "in sync"
        sizes.append(result.bytes)
    print(f"\nidle round A->B: {sizes[0]} bytes (request and response, headers included)")
    assert max(sizes) < 950  # about 880 with the signed request and the signed answer


def test_a_library_file_uploaded_on_c_arrives_at_a(line: dict[str, Node]) -> None:
    a, c = line["A"], line["C"]
    data = fake_pdf(300_000, seed=1)
    item = add_file(c, data)
    sha = item["body"]["sha256"]
    wait_for("the file on A", lambda: a.blobs.has(sha), timeout=30)
    assert hashlib.sha256(a.blobs.path(sha).read_bytes()).hexdigest() == sha
    assert a.store.library_item(item["id"]) is not None
    assert not list(a.blobs.root.glob(".partial-*"))


def test_a_file_that_b_gets_after_a_looked_for_it_reaches_a_when_b_has_it(
        tmp_path: Path) -> None:
    """An item's entry crosses a hop before its file: A looks for the file while B is
    still fetching it from C. When B has it, B tells A, and A asks again, rather than at
    the periodic round (an hour here; on a mesh, the next one)."""
    a_looked = threading.Event()

    def hold_files_until_a_looked(app: WSGIApp) -> WSGIApp:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]
                    ) -> Iterable[bytes]:
            if "/blobs/" in environ["PATH_INFO"]:
                a_looked.wait(60)
            return app(environ, start_response)
        return wrapped

    patient = dataclasses.replace(FAST, timeout_seconds=90.0)  # B waits for C's answer
    identities = {name: Identity.generate() for name in "ABC"}
    made: dict[str, Node] = {}
    try:
        for name in "ABC":
            made[name] = make_node(tmp_path, name, identities[name], identities.values(),
                                   patient, wrap=hold_files_until_a_looked if name == "C"
                                   else None)
        a, b, c = made["A"], made["B"], made["C"]
        link(a, b)
        link(b, c)
        for node in made.values():
            node.service.start()
        wait_for("the first rounds",
                 lambda: all(n.service.rounds >= len(n.peer_list) for n in made.values())
                 and idle(a, b, c), timeout=30)
        sha = add_file(c, fake_pdf(200_000, seed=4))["body"]["sha256"]
        wait_for("A looking for the file before B has it",
                 lambda: sha in {w["sha256"] for w in a.service.last_files.not_found}, timeout=60)
        a_looked.set()
        wait_for("the file on A", lambda: a.blobs.has(sha), timeout=FAST.interval_seconds / 100)
        assert b.blobs.has(sha)
    finally:
        a_looked.set()
        for node in made.values():
            node.close()


def _count_file_looks(node: Node) -> list[float]:
    """The times ``node``'s service looks for library files, from now on."""
    looks: list[float] = []
    look = node.service.fetch_files

    def counted(peers: Iterable[str] | None = None) -> Any:
        looks.append(time.monotonic())
        return look(peers)

    node.service.fetch_files = counted  # type: ignore[method-assign]
    return looks


def test_an_idle_node_looks_for_library_files_only_when_its_store_changed(
        tmp_path: Path) -> None:
    """Nothing changed and nothing left to fetch: the file thread looks once, at the start,
    not at every round (it did: a store connection and the library's items each time, 11
    ms of an idle lab agent's processor every round)."""
    quick = dataclasses.replace(FAST, interval_seconds=0.1)
    with nodes(tmp_path, "AB", quick) as made:
        a, b = made["A"], made["B"]
        link(a, b)
        looks = _count_file_looks(a)
        for node in made.values():
            node.service.start()
        wait_for("ten rounds on A", lambda: a.service.rounds >= 10, timeout=30)
        assert len(looks) == 1
        sha = add_file(b, fake_pdf(50_000, seed=7))["body"]["sha256"]
        wait_for("the file on A", lambda: a.blobs.has(sha), timeout=30)
        assert len(looks) >= 2


def test_a_file_no_neighbour_has_is_looked_for_again_each_round_interval(
        tmp_path: Path) -> None:
    quick = dataclasses.replace(FAST, interval_seconds=0.1)
    with nodes(tmp_path, "AB", quick) as made:
        a, b = made["A"], made["B"]
        link(a, b)
        sha = add_file(a, fake_pdf(50_000, seed=8))["body"]["sha256"]
        a.blobs.delete(sha)  # its item is listed, its file nowhere
        looks = _count_file_looks(a)
        for node in made.values():
            node.service.start()
        wait_for("A looking for the file three times", lambda: len(looks) >= 3, timeout=30)
        assert sha in {w["sha256"] for w in a.service.last_files.not_found}


def test_quota_fetches_newest_and_smallest_first_and_says_what_it_skipped(
        tmp_path: Path) -> None:
    settings = dataclasses.replace(FAST, quota_bytes=100_000)
    with nodes(tmp_path, "AB", settings) as made:
        a, b = made["A"], made["B"]
        link(a, b)
        old_small = add_file(b, fake_pdf(30_000, 1), "old small")
        time.sleep(0.01)
        new_big = add_file(b, fake_pdf(80_000, 2), "new big")
        time.sleep(0.01)
        newest = add_file(b, fake_pdf(50_000, 3), "newest")
        rounds, report = a.service.sync_now()
        assert rounds[0].outcome == "pulled" and rounds[0].accepted == 3
        assert report is not None
        assert set(report.fetched) == {newest["body"]["sha256"], old_small["body"]["sha256"]}
        assert [s["title"] for s in report.skipped] == ["new big"]
        assert "quota" in report.skipped[0]["reason"]
        assert not a.blobs.has(new_big["body"]["sha256"])
        status = a.service.status()
        assert status["files"]["skipped"][0]["sha256"] == new_big["body"]["sha256"]
