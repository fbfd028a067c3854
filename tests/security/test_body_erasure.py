"""Issue 17 item 1: a peer must not be able to erase a body.

The attack: a rogue copies a genuine, not-yet-seen notice and serves it
first with ``"body": null``. A box without a registered key cannot even
deliver it now (its answers are not signed by a registered node), so the
rogue here is a registered node whose key was stolen. The header verifies
(the body is covered only by ``body_hash``), so the node stores it; before
the fix, an erased body was never restored and the notice stayed hidden for good. Now only a signed
delete or the node's own retention rule erases; any other missing body is
fetched from a peer that has it and checked against ``body_hash``.
"""

from __future__ import annotations

from pathlib import Path

from bench.waiting import wait_for
from node.sync import protocol
from tests.node.test_sync_support import Server, link, nodes, notice
from tests.security.rogue import compromised, erased, rogue_app


def test_a_rogue_without_a_registered_key_cannot_deliver_anything(tmp_path: Path) -> None:
    with nodes(tmp_path, "AB") as made:
        a, b = made["A"], made["B"]
        post = a.store.append("notice.post", notice("Boil water before drinking"), actor="ada")
        rogue = Server(rogue_app([erased(post)]))
        try:
            (round_,), _ = b.service.sync_now([rogue.url], files=False)
        finally:
            rogue.stop()
        assert round_.outcome == "failed" and "does not say which node" in (round_.error or "")
        assert b.store.entry(post["id"]) is None


def test_a_rogue_serving_a_notice_erased_first_cannot_hide_it(tmp_path: Path) -> None:
    with nodes(tmp_path, "ABCR") as made:
        a, b, c = made["A"], made["B"], made["C"]
        post = a.store.append("notice.post", notice("Boil water before drinking"), actor="ada")
        rogue = Server(compromised(rogue_app([erased(post)]), made["R"].identity))
        try:
            # The rogue delivers first: B takes the genuine header without its body ...
            (round_,), _ = b.service.sync_now([rogue.url], files=False)
            assert round_.outcome == "pulled" and round_.accepted == 1, round_
        finally:
            rogue.stop()
        assert b.store.notice(post["id"]) is None
        # ... and passes it on as it holds it, before the mesh heals.
        link(b, c)
        c.service.sync_now([b.url], files=False)
        assert c.store.vector() == a.store.vector() == b.store.vector()
        assert b.store.missing_bodies(10, retention_days=30) == [post["id"]]
        assert c.store.missing_bodies(10, retention_days=30) == [post["id"]]

        link(a, b)  # the heal: equal digests everywhere, yet B and C still lack the body
        for node in (a, b, c):
            node.service.start()
        b.service.schedule_pull(None)
        wait_for("the notice on every node",
                 lambda: all(n.store.notice(post["id"]) is not None for n in (a, b, c)),
                 timeout=10)
        for node in (a, b, c):
            assert node.store.notice(post["id"]).title == "Boil water before drinking"
            assert node.store.entry(post["id"]) == post
            assert node.store.missing_bodies(10, retention_days=30) == []


def test_a_body_served_to_restore_one_must_match_its_signed_hash(tmp_path: Path) -> None:
    with nodes(tmp_path, "AB") as made:
        a, b = made["A"], made["B"]
        post = a.store.append("notice.post", notice("Road closed"), actor="ada")
        b.store.ingest([erased(post)])
        forged = {**post, "body": {"title": "Road open", "body": "All clear"}}
        report = b.store.ingest([forged])
        assert report.restored == [] and report.rejected == [(post["id"], "body hash mismatch")]
        assert b.store.notice(post["id"]) is None
        report = b.store.ingest([post])
        assert report.restored == [post["id"]]
        assert b.store.notice(post["id"]).title == "Road closed"


def test_a_peer_answering_bodies_with_entries_not_asked_for_is_refused(tmp_path: Path) -> None:
    with nodes(tmp_path, "ABC") as made:
        a, b = made["A"], made["B"]
        asked = a.store.append("notice.post", notice("One"), actor="ada")
        other = a.store.append("notice.post", notice("Two"), actor="ada")
        b.store.ingest([erased(asked)])

        def pushy(environ, start_response):  # type: ignore[no-untyped-def]
            if environ["PATH_INFO"] == "/sync/v1/bodies":
                body = protocol.dumps({"entries": [other]})
                start_response("200 OK", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(body)))])
                return [body]
            return rogue_app([erased(asked)])(environ, start_response)

        server = Server(compromised(pushy, made["C"].identity))
        try:
            (round_,), _ = b.service.sync_now([server.url], files=False)
            assert round_.outcome == "failed" and "not asked for" in (round_.error or "")
            assert b.store.vector() == {a.identity.public_key: 1}
            assert b.store.notice(other["id"]) is None
        finally:
            server.stop()
