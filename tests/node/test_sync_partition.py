"""A partition between B and C, changes on both sides (deletes against edits), then healing."""

from __future__ import annotations

from pathlib import Path

from bench.waiting import wait_for
from tests.node.test_store_support import dump_views, listing_body
from tests.node.test_sync_support import cut, link, nodes, notice, portals_render


def test_both_halves_converge_after_healing_deletions_included(tmp_path: Path) -> None:
    with nodes(tmp_path, "ABC") as made:
        a, b, c = made["A"], made["B"], made["C"]
        link(a, b)
        link(b, c)
        for node in made.values():
            node.service.start()
        x = a.store.append("listing.post", listing_body("Sofa"), actor="ada")
        y = c.store.append("notice.post", notice("Choir"), actor="ada")
        z = b.store.append("listing.post", listing_body("Ladder"), actor="ada")
        wait_for("first sync",
                 lambda: len({n.store.digest() for n in made.values()}) == 1, timeout=30)

        cut(b, c)
        # The A-B half deletes X and edits Y; the C half edits X and deletes Y.
        a.store.append("listing.delete", {"reason": "sold"}, actor="ada", target=x["id"])
        b.store.append("notice.edit", {"body": "Moved to Thursday"}, actor="ada",
                       target=y["id"])
        a.store.append("notice.post", notice("West side news"), actor="ada")
        c.store.append("listing.edit", {"title": "Sofa (still there)"}, actor="ada",
                       target=x["id"])
        c.store.append("notice.delete", {}, actor="ada", target=y["id"])
        c.store.append("listing.edit", {"pinned": True}, actor="ada", target=z["id"])
        east = c.store.append("notice.post", notice("East side news"), actor="ada")
        wait_for("the west half", lambda: a.store.digest() == b.store.digest(), timeout=30)
        assert b.store.digest() != c.store.digest()
        assert c.store.listing(x["id"]) is not None and b.store.listing(x["id"]) is None

        link(b, c)  # heal; the periodic round is off, so a round is asked for explicitly
        c.service.schedule_pull(None)
        wait_for("healing",
                 lambda: len({n.store.digest() for n in made.values()}) == 1, timeout=30)
        # Once each node's portal rendered what replication stored with a stand-in.
        wait_for("identical views", lambda: portals_render(a, b, c) and dump_views(
            a.store) == dump_views(b.store) == dump_views(c.store), timeout=30)
        for node in made.values():
            assert node.store.listing(x["id"]) is None, node.name
            assert node.store.notice(y["id"]) is None, node.name
            assert node.store.notice(east["id"]) is not None
            assert node.store.listing(z["id"]).pinned is True
            assert [t for t in node.store.search("sofa")] == []
            # Every body of a deleted item is erased, on every node, the late edit too.
            rows = node.store._conn().execute(
                "SELECT kind, body IS NULL FROM entries WHERE subject IN (?, ?)",
                (x["id"], y["id"])).fetchall()
            assert {(k, erased) for k, erased in rows} == {
                ("listing.post", 1), ("listing.edit", 1), ("listing.delete", 0),
                ("notice.post", 1), ("notice.edit", 1), ("notice.delete", 0)}, node.name
