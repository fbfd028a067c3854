"""The sync endpoints: strict requests, bounded responses, files with Range, the registry."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from node.identity import Identity
from node.sync import protocol
from node.sync.http import create_sync_app
from node.trust.registry import Admin, AdminSet, Signature, SignedSnapshot, install_initial
from node.trust.registry import signing_message as registry_message
from tests.node.test_store_support import dump_views, listing_body
from tests.node.test_sync_support import Node, add_file, fake_pdf, make_node, nodes, notice


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = make_node(tmp_path, "A", Identity.generate(), [], serve=False)
    try:
        yield made
    finally:
        made.close()


def client(node: Node) -> Client:
    return Client(create_sync_app(node.service))


def post(c: Client, path: str, body: bytes | Any, **kw: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return c.post(f"/sync/v1/{path}", data=data, content_type="application/json", **kw)


def test_digest_is_small_and_matches_the_store(node: Node) -> None:
    node.store.append("notice.post", notice(), actor="ada")
    response = client(node).get("/sync/v1/digest")
    assert response.status_code == 200 and len(response.data) < 200
    doc = protocol.parse_digest(json.loads(response.data))
    assert doc.digest == node.store.digest() and doc.count == 1 and doc.registry is None


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{nope", 400, "not valid JSON"),
    ({"vector": {}, "extra": 1}, 400, "unknown member 'extra'"),
    ({"vector": {"ab": 1}}, 400, "not an author key"),
    ({"vector": {"a" * 64: 0}}, 400, "from 1 to"),
    ({"vector": {"a" * 64: 1.0}}, 400, "expected an integer"),
    (b'{"vector": {}, "vector": {}}', 400, "appears twice"),
    (b'{"vector": {"' + b"a" * 64 + b'": NaN}}', 400, "NaN is not allowed"),
    ({"vector": {"a" * 64: 1}, "port": 0}, 400, "port"),
])
def test_malformed_requests_are_refused_naming_the_problem(
        node: Node, body: Any, status: int, message: str) -> None:
    response = post(client(node), "vector", body)
    assert response.status_code == status
    assert message in response.json["error"]


def test_oversized_and_unsized_requests_are_refused_before_reading(node: Node) -> None:
    c = client(node)
    big = {"vector": {f"{i:064x}": 1 for i in range(5000)}}
    response = post(c, "vector", big)
    assert response.status_code == 413 and "at most 262144" in response.json["error"]
    response = c.post("/sync/v1/vector", data=b"{}", headers={"Content-Length": ""})
    assert response.status_code in (400, 411)
    assert c.get("/sync/v1/entries").status_code == 405
    assert c.get("/sync/v1/other").status_code == 404


def test_entries_are_paged_in_author_seq_order_within_the_byte_limit(node: Node) -> None:
    for i in range(7):
        node.store.append("listing.post", listing_body(f"Item {i}"), actor="ada")
    c = client(node)
    response = post(c, "entries", {"since": {}, "limit": 3})
    entries, more = protocol.parse_entries_response(response.json, 3)
    assert more and [e["header"]["seq"] for e in entries] == [1, 2, 3]
    me = node.identity.public_key
    response = post(c, "entries", {"since": {me: 6}, "limit": 3})
    entries, more = protocol.parse_entries_response(response.json, 3)
    assert not more and [e["header"]["seq"] for e in entries] == [7]
    assert post(c, "entries", {"since": {}, "limit": 501}).status_code == 400


def test_a_page_never_exceeds_one_mebibyte(node: Node) -> None:
    with node.store.batch() as add:
        for i in range(300):
            add("listing.post", listing_body(f"Item {i}", body="é" * 4900), actor="ada")
    response = post(client(node), "entries", {"since": {}, "limit": 500})
    assert len(response.data) <= protocol.MAX_PAGE_BYTES
    entries, more = protocol.parse_entries_response(response.json, 500)
    assert more and 50 < len(entries) < 300


def test_notify_with_a_new_digest_schedules_a_pull_from_the_sender(node: Node) -> None:
    c = client(node)
    same = post(c, "notify", {"digest": node.store.digest(), "port": 9180})
    assert same.status_code == 200 and same.json == {"pull": False}
    other = post(c, "notify", {"digest": "0" * 16, "port": 9180},
                 environ_base={"REMOTE_ADDR": "10.42.0.7"})
    assert other.status_code == 202
    assert node.service._pending == {"http://10.42.0.7:9180"}


def test_files_are_served_whole_or_by_range_only_for_live_items(node: Node) -> None:
    data = fake_pdf(10_000, 3)
    item = add_file(node, data)
    sha = item["body"]["sha256"]
    c = client(node)
    whole = c.get(f"/sync/v1/blobs/{sha}")
    assert whole.status_code == 200 and whole.data == data
    part = c.get(f"/sync/v1/blobs/{sha}", headers={"Range": "bytes=4000-"})
    assert part.status_code == 206 and part.data == data[4000:]
    assert part.headers["Content-Range"] == "bytes 4000-9999/10000"
    assert c.get(f"/sync/v1/blobs/{sha}", headers={"Range": "bytes=10000-"}).status_code == 416
    for ignored in ("bytes=-10", "bytes=0-1,5-9", "bytes=9-1", "items=0-1"):  # RFC 9110 §14.2
        answer = c.get(f"/sync/v1/blobs/{sha}", headers={"Range": ignored})
        assert answer.status_code == 200 and answer.data == data, ignored
    node.store.append("library.delete", {}, actor="ada", target=item["id"])
    assert c.get(f"/sync/v1/blobs/{sha}").status_code == 404  # no live item refers to it
    assert c.get("/sync/v1/blobs/" + "z" * 64).status_code == 404


def test_an_interrupted_file_transfer_resumes_with_range(tmp_path: Path) -> None:
    ranges: list[str | None] = []

    def cut_first_transfer(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]
                    ) -> Iterable[bytes]:
            if "/blobs/" not in environ["PATH_INFO"]:
                return app(environ, start_response)
            ranges.append(environ.get("HTTP_RANGE"))
            body = b"".join(app(environ, start_response))
            return [body[:120_000]] if len(ranges) == 1 else [body]  # then the peer "drops"
        return wrapped

    with nodes(tmp_path, "AB", wrap=cut_first_transfer) as made:
        a, b = made["A"], made["B"]
        data = fake_pdf(300_000, 9)
        sha = add_file(b, data)["body"]["sha256"]
        _, first = a.service.sync_now([b.url])
        assert first is not None and first.fetched == [] and "broke off" in first.failed[0][
            "reason"]
        partial = a.blobs.root / f".partial-{sha}"
        assert partial.stat().st_size == 120_000
        a.service.backoff.succeeded(b.url)  # skip the back-off wait
        second = a.service.fetch_files([b.url])
        assert second.fetched == [sha] and ranges == [None, "bytes=120000-"]
        assert hashlib.sha256(a.blobs.path(sha).read_bytes()).hexdigest() == sha
        assert not partial.exists()


def snapshot(serial: int, admin: Identity, keys: list[str]) -> bytes:
    body = {"serial": serial, "community": {"name": "Elm", "threshold": 1, "admins": [
        {"name": "ada", "public_key": admin.public_key}]},
        "nodes": [{"name": f"n{i}", "public_key": k, "status": "active"}
                  for i, k in enumerate(keys)]}
    return SignedSnapshot(body, (Signature(admin.public_key,
                                           admin.sign(registry_message(body))),)).dumps()


def test_a_newer_registry_snapshot_travels_and_its_keys_become_trusted(tmp_path: Path) -> None:
    admin, ida, idb, idc = (Identity.generate() for _ in range(4))
    anchors = AdminSet((Admin("ada", admin.public_key),), 1)
    reg_a = install_initial(tmp_path / "rega", anchors,
                            snapshot(1, admin, [ida.public_key, idb.public_key]))
    reg_b = install_initial(tmp_path / "regb", anchors,
                            snapshot(2, admin, [ida.public_key, idb.public_key, idc.public_key]))
    a = make_node(tmp_path, "A", ida, [], serve=False)
    b = make_node(tmp_path, "B", idb, [ida, idc])
    try:
        a.store.trust = a.service.registry = reg_a
        b.service.registry = reg_b
        c = make_node(tmp_path, "C", idc, [], serve=False)
        try:
            from_c = c.store.append("notice.post", notice("From the new node"), actor="ada")
        finally:
            c.close()
        assert b.store.ingest([from_c]).accepted
        before = dump_views(a.store)
        result = a.service.pull_from(b.url)
        assert result.registry == "installed serial 2" and result.accepted == 1
        assert reg_a.serial == 2 and a.store.notice(from_c["id"]) is not None
        assert dump_views(a.store) != before
        assert Client(create_sync_app(a.service)).get("/sync/v1/registry").data == \
            reg_b.snapshot.dumps()
    finally:
        a.close()
        b.close()


def test_a_success_clears_the_peers_last_error() -> None:
    from node.sync.backoff import Backoff

    backoff = Backoff(0.01, 0.05)
    backoff.failed("http://10.42.0.2:9180", "unreachable", bad_data=False)
    assert backoff.peer("http://10.42.0.2:9180").last_error == "unreachable"
    backoff.succeeded("http://10.42.0.2:9180")
    record = backoff.peer("http://10.42.0.2:9180").to_json(backoff.now())
    assert record["last_error"] is None and record["failures"] == 0


def test_a_request_leaves_its_thread_without_a_store_connection(node: Node) -> None:
    """The agent's server answers in four worker threads; each kept the store connection
    its first request opened for good (~145 KiB each of an idle agent's memory)."""
    node.store.append("notice.post", notice(), actor="ada")
    after: list[tuple[int, bool]] = []

    def serve() -> None:
        response = post(client(node), "vector", {"vector": {}})
        after.append((response.status_code, getattr(node.store._local, "conn", None) is None))

    worker = threading.Thread(target=serve)
    worker.start()
    worker.join()
    assert after == [(200, True)]
    assert all(thread is not worker for thread, _conn in node.store._conns)


def test_a_sender_over_its_rate_is_told_to_wait_for_the_round(node: Node) -> None:
    """Each notification that asks for a pull counts against its sender's rate; past the
    burst the sender gets 429 (it waits for the periodic round), another sender does not."""
    c = client(node)
    burst = node.service.settings.notify_burst
    statuses = [post(c, "notify", {"digest": f"{i:016x}", "port": 9180},
                     environ_base={"REMOTE_ADDR": "10.42.0.7"}).status_code
                for i in range(1, burst + 3)]
    assert statuses[:burst] == [202] * burst
    refused = post(c, "notify", {"digest": "f" * 16, "port": 9180},
                   environ_base={"REMOTE_ADDR": "10.42.0.7"})
    assert refused.status_code == 429
    assert "the periodic round will pull from you" in refused.get_data(as_text=True)
    other = post(c, "notify", {"digest": "e" * 16, "port": 9180},
                 environ_base={"REMOTE_ADDR": "10.42.0.8"})
    assert other.status_code == 202
