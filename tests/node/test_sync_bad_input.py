"""Bad peers: each kind of bad data is refused with a logged reason and changes nothing."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.identity import Identity
from node.sync.service import PeerRound
from tests.node.test_store_support import FakeClock, dump_views, listing_body
from tests.node.test_sync_support import Node, add_file, fake_pdf, make_node, notice

Rewrite = Callable[[bytes], bytes]


class Tamper:
    """WSGI middleware rewriting the response body of one sync path (when armed)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.rewrite: Rewrite = lambda body: body
        self.keep_length = False

    def arm(self, path: str, rewrite: Rewrite, *, keep_length: bool = False) -> None:
        self.path, self.rewrite, self.keep_length = path, rewrite, keep_length

    def __call__(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]
                    ) -> Iterable[bytes]:
            if environ["PATH_INFO"] != self.path:
                return app(environ, start_response)
            captured: dict[str, Any] = {}

            def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> None:
                captured["status"], captured["headers"] = status, headers

            body = b"".join(app(environ, capture))
            new = self.rewrite(body)
            length = len(body) if self.keep_length else len(new)
            headers = [(k, v) for k, v in captured["headers"] if k != "Content-Length"]
            start_response(captured["status"], [*headers, ("Content-Length", str(length))])
            return [new]
        return wrapped


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node, Tamper, Identity]]:
    """A (honest, not served) and B (served through a Tamper); B also trusts U, A does not.

    A's back-off counts in a clock held still: a refused peer stays backed off until the
    test moves it (the tests' 0.05 s back-off would otherwise end under a slow check).
    """
    ida, idb, idu = Identity.generate(), Identity.generate(), Identity.generate()
    tamper = Tamper()
    a = make_node(tmp_path, "A", ida, [idb], serve=False, clock=FakeClock())
    b = make_node(tmp_path, "B", idb, [ida, idu], wrap=tamper)
    try:
        yield a, b, tamper, idu
    finally:
        a.close()
        b.close()


def entries_json(edit: Callable[[list[dict[str, Any]]], None]) -> Rewrite:
    def rewrite(body: bytes) -> bytes:
        doc = json.loads(body)
        edit(doc["entries"])
        return json.dumps(doc).encode()
    return rewrite


def refused(a: Node, b: Node, caplog: pytest.LogCaptureFixture, reason: str) -> PeerRound:
    """Pull from B; assert it failed for ``reason``, was logged, and A changed nothing."""
    before, vector = dump_views(a.store), a.store.vector()
    with caplog.at_level(logging.WARNING, logger="meshhub.sync"):
        result = a.service.pull_from(b.url)
    assert result.outcome == "failed", result
    assert reason in (result.error or ""), result.error
    assert any(reason in r.getMessage() for r in caplog.records), caplog.text
    assert dump_views(a.store) == before and a.store.vector() == vector
    state = a.service.backoff.peer(b.url)
    assert state.failures == 1 and state.bad_data == 1
    assert not a.service.backoff.ready(b.url)  # backed off
    return result


def test_tampered_body_is_refused(pair: tuple[Node, Node, Tamper, Identity],
                                  caplog: pytest.LogCaptureFixture) -> None:
    a, b, tamper, _ = pair
    b.store.append("listing.post", listing_body("Sofa"), actor="ada")

    def edit(entries: list[dict[str, Any]]) -> None:
        entries[0]["body"]["title"] = "Free money"
    tamper.arm("/sync/v1/entries", entries_json(edit))
    refused(a, b, caplog, "body hash mismatch")


def test_tampered_header_is_refused(pair: tuple[Node, Node, Tamper, Identity],
                                    caplog: pytest.LogCaptureFixture) -> None:
    a, b, tamper, _ = pair
    b.store.append("listing.post", listing_body("Sofa"), actor="ada")

    def edit(entries: list[dict[str, Any]]) -> None:
        entries[0]["header"]["ts"] += 1
        del entries[0]["id"]
    tamper.arm("/sync/v1/entries", entries_json(edit))
    refused(a, b, caplog, "bad signature")


def test_entries_of_an_untrusted_key_are_not_pulled_nor_accepted(
        pair: tuple[Node, Node, Tamper, Identity], caplog: pytest.LogCaptureFixture) -> None:
    a, b, tamper, idu = pair
    stranger = make_node(b.store.path.parent.parent, "U", idu, [], serve=False)
    try:
        foreign = stranger.store.append("notice.post", notice("Buy now"), actor="spam")
    finally:
        stranger.close()
    assert b.store.ingest([foreign]).accepted  # B trusts U; A does not
    own = b.store.append("notice.post", notice("Real news"), actor="ada")
    with caplog.at_level(logging.WARNING, logger="meshhub.sync"):
        result = a.service.pull_from(b.url)
    assert result.outcome == "pulled" and result.accepted == 1
    assert a.store.notice(own["id"]) is not None and a.store.notice(foreign["id"]) is None
    assert "does not trust" in caplog.text
    # A peer that sends them anyway, against the request, is refused and backed off.
    b.store.append("notice.post", notice("More news"), actor="ada")
    tamper.arm("/sync/v1/entries", entries_json(lambda entries: entries.append(foreign)))
    refused(a, b, caplog, "not asked for")
    assert a.store.notice(foreign["id"]) is None


def test_a_replayed_entry_is_refused(pair: tuple[Node, Node, Tamper, Identity],
                                     caplog: pytest.LogCaptureFixture) -> None:
    a, b, tamper, _ = pair
    old = b.store.append("listing.post", listing_body("Sofa"), actor="ada")
    assert a.service.pull_from(b.url).accepted == 1
    b.store.append("listing.post", listing_body("Chair"), actor="ada")
    replay = copy.deepcopy(old)
    tamper.arm("/sync/v1/entries", entries_json(lambda entries: entries.insert(0, replay)))
    refused(a, b, caplog, "not asked for")


@pytest.mark.parametrize(("rewrite", "keep_length", "reason"), [
    (lambda body: body[: len(body) // 2], True, "truncated response"),
    (lambda body: b"<html>Gateway Timeout</html>", False, "not valid JSON"),
    (lambda body: b'{"entries": [], "more": false, "entries": [1]}', False, "appears twice"),
    (lambda body: b'{"entries": [1.5], "more": false}', False, "every entry must be an object"),
    (lambda body: b'{"entries": [], "more": "yes"}', False, "more must be true or false"),
    (lambda body: b" " * (2 * 1024 * 1024), False, "allowed"),
])
def test_truncated_or_garbage_responses_are_refused(
        pair: tuple[Node, Node, Tamper, Identity], caplog: pytest.LogCaptureFixture,
        rewrite: Rewrite, keep_length: bool, reason: str) -> None:
    a, b, tamper, _ = pair
    b.store.append("listing.post", listing_body("Sofa"), actor="ada")
    tamper.arm("/sync/v1/entries", rewrite, keep_length=keep_length)
    refused(a, b, caplog, reason)


def test_a_garbage_digest_is_refused_and_repeats_are_logged_once(
        pair: tuple[Node, Node, Tamper, Identity], caplog: pytest.LogCaptureFixture) -> None:
    a, b, tamper, _ = pair
    tamper.arm("/sync/v1/digest", lambda body: b'{"digest": "zz", "node": 1}')
    refused(a, b, caplog, "missing member")
    with caplog.at_level(logging.WARNING, logger="meshhub.sync"):
        caplog.clear()
        assert a.service.pull_from(b.url).outcome == "backed off"
        assert a.service.pull_from(b.url, force=True).outcome == "failed"
    assert caplog.records == []  # counted, not logged again
    assert a.service.status()["problems"][f"peer:{b.url}"] == 2


def test_a_file_whose_bytes_do_not_match_its_hash_is_refused(
        pair: tuple[Node, Node, Tamper, Identity], caplog: pytest.LogCaptureFixture) -> None:
    a, b, _, _ = pair
    item = add_file(b, fake_pdf(100_000, 7))
    sha = item["body"]["sha256"]
    path = b.blobs.path(sha)
    path.write_bytes(path.read_bytes()[:-5] + b"EVIL!")  # same size, other bytes
    with caplog.at_level(logging.WARNING, logger="meshhub.sync"):
        _, report = a.service.sync_now([b.url])
    assert report is not None and report.fetched == []
    assert "do not match" in report.failed[0]["reason"] or "hash" in report.failed[0]["reason"]
    assert "hash" in caplog.text
    assert not a.blobs.has(sha) and not list(a.blobs.root.glob(".partial-*"))
    assert a.service.backoff.peer(b.url).bad_data == 1


def test_a_full_disk_during_ingestion_leaves_the_store_as_it_was(
        pair: tuple[Node, Node, Tamper, Identity], caplog: pytest.LogCaptureFixture) -> None:
    a, b, _, _ = pair
    a.store.append("notice.post", notice("Already here"), actor="ada")
    for i in range(30):
        b.store.append("listing.post", listing_body(f"Item {i}", body="x" * 3000), actor="ada")
    before, vector = dump_views(a.store), a.store.vector()
    conn = a.store._conn()  # this thread's connection: the pull below ingests through it
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's "database or disk is full"
    with caplog.at_level(logging.WARNING, logger="meshhub.sync"):
        result = a.service.pull_from(b.url)
    assert result.outcome == "local error"
    assert "database or disk is full" in (result.error or "")
    assert "database or disk is full" in caplog.text
    assert dump_views(a.store) == before and a.store.vector() == vector
    assert a.service.backoff.ready(b.url)  # not the peer's fault
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert a.service.pull_from(b.url).accepted == 30
