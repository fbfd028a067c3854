"""`rebuild` derives exactly what incremental updates derived; migrations; threads."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from node.errors import StoreError
from node.identity import Identity
from node.store import Store, schema
from tests.node.test_store_support import (
    FakeClock,
    downgrade,
    dump_views,
    listing_body,
    open_store,
)
from tests.node.test_store_views import deliver_in_random_order, varied_history


def test_rebuild_equals_incremental_after_varied_history(tmp_path: Path) -> None:
    wires, ids = varied_history(tmp_path)
    clock = FakeClock()
    with open_store(tmp_path / "n.db", Identity.generate(), *ids, clock=clock) as store:
        deliver_in_random_order(store, wires, seed=42)
        post = store.append("listing.post", listing_body("Bike"), actor="ada")
        store.append("listing.edit", {"pinned": True}, actor="ada", target=post["id"])
        store.append("library.add", {"title": "Guide", "media_type": "pdf",
                                     "mime": "application/pdf", "sha256": "cd" * 32,
                                     "size": 3, "filename": "guide.pdf"}, actor="ada")
        clock.advance(40 * 86400)
        store.erase_expired_submissions(retention_days=30)
        before = dump_views(store)
        assert before["listings"] and before["submissions"] and before["accounts"]
        counts = store.rebuild()
        assert dump_views(store) == before
        assert counts["listings"] == len(before["listings"])


def test_rebuild_repairs_damaged_views(tmp_path: Path) -> None:
    with open_store(tmp_path / "n.db", Identity.generate()) as store:
        store.append("listing.post", listing_body("Sofa"), actor="ada")
        expected = dump_views(store)
        store._conn().execute("DELETE FROM listings")
        store._conn().execute("UPDATE search_index SET title = 'garbage'")
        store.rebuild()
        assert dump_views(store) == expected
        assert store.search("sofa")[0].title == "Sofa"


def test_new_database_uses_wal_and_latest_schema(tmp_path: Path) -> None:
    with open_store(tmp_path / "n.db", Identity.generate()) as store:
        conn = store._conn()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION


@pytest.mark.parametrize("version", [1, 4])
def test_upgrade_keeps_content_and_drops_the_unused_counters_table(tmp_path: Path,
                                                                   version: int) -> None:
    ident = Identity.generate()
    db = tmp_path / "n.db"
    with open_store(db, ident) as store:
        post = store.append("listing.post", listing_body("Sofa"), actor="ada")
    # Turn it back into a database of that version, as an older meshhub left it.
    conn = sqlite3.connect(db, isolation_level=None)
    downgrade(conn, version)
    if version >= 2:  # counters existed from version 2 to 4: one with a window in it
        conn.execute("INSERT INTO counters VALUES ('signin:ada', 0, 3)")
    conn.close()
    with open_store(db, ident) as store:
        conn = store._conn()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "counters" not in tables and "store_meta" in tables
        assert store.listing(post["id"]).title == "Sofa"
        assert store.audit().total == 1


def test_upgrade_from_version_5_adds_the_local_reports_table(tmp_path: Path) -> None:
    ident = Identity.generate()
    db = tmp_path / "n.db"
    with open_store(db, ident) as store:
        post = store.append("listing.post", listing_body("Sofa"), actor="ada")
    conn = sqlite3.connect(db, isolation_level=None)
    downgrade(conn, 5)
    conn.close()
    with open_store(db, ident) as store:
        assert store._conn().execute("PRAGMA user_version").fetchone()[0] == 6
        assert store.reports() == []
        store.add_report(post["id"], "scam", "", 100)
        (group,) = store.reports()
        assert (group.listing_id, group.count, group.reasons) == (post["id"], 1, ("scam",))
        assert store.listing(post["id"]).title == "Sofa"


def test_fresh_v1_then_migrate_step_by_step(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    conn = schema.connect(db)
    assert schema.migrate(conn, db, target=1) == 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert schema.migrate(conn, db) == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()


def test_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer than this meshhub understands"):
        open_store(db, Identity.generate())


def test_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"n\.db"):
        open_store(db, Identity.generate())


def test_closed_store_says_so_and_close_is_idempotent(tmp_path: Path) -> None:
    store = open_store(tmp_path / "n.db", Identity.generate())
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.listings()


def test_shared_by_threads_each_with_its_own_connection(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    used: list[sqlite3.Connection] = []  # kept referenced, so no two can share an id
    with open_store(tmp_path / "n.db", Identity.generate()) as store:
        def work(n: int) -> None:
            try:
                for i in range(10):
                    store.append("listing.post", listing_body(f"t{n}-{i}"), actor="ada")
                    store.listings()
                used.append(store._conn())
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.vector() == {store.identity.public_key: 80}
        assert store.listings().total == 80
        # One connection per worker, none the opening thread's. How many stay open
        # depends on when each worker ended (an ended thread's connection is closed
        # when another thread opens one: the next test).
        assert len({id(conn) for conn in used}) == 8
        assert store._conn() not in used


def test_threads_that_come_and_go_leave_no_connection_open(tmp_path: Path) -> None:
    """A sync round pulls from its neighbours in new worker threads, each of which reads
    the store: an idle lab agent with two neighbours held 56 connections (three open files
    each) after 2.5 minutes of 10 s rounds, and more each round. What a thread that has
    ended opened is closed when the next one opens its own."""
    db = tmp_path / "n.db"

    def open_files() -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir()
                   if os.path.realpath(fd).startswith(str(db)))  # the database, -wal, -shm

    with open_store(db, Identity.generate()) as store:
        store.append("listing.post", listing_body("Bike"), actor="ada")
        for _round in range(20):
            worker = threading.Thread(target=store.listings)
            worker.start()
            worker.join()
        # The opening thread's connection and the last worker's (closed by the next one).
        assert open_files() <= 2 * 3
        assert len(store._conns) == 2
        assert store.listings().total == 1


def test_second_process_sees_writes(tmp_path: Path) -> None:
    ident = Identity.generate()
    with open_store(tmp_path / "n.db", ident) as one, open_store(tmp_path / "n.db", ident) as two:
        one.append("listing.post", listing_body("Sofa"), actor="ada")
        two.append("listing.post", listing_body("Lamp"), actor="ada")
        assert one.vector() == two.vector() == {ident.public_key: 2}


def test_verify_reports_tampering_in_the_database(tmp_path: Path) -> None:
    with open_store(tmp_path / "n.db", Identity.generate()) as store:
        post = store.append("listing.post", listing_body("Sofa"), actor="ada")
        assert store.verify() == []
        store._conn().execute("UPDATE entries SET body = replace(body, 'Sofa', 'Sofb')")
        assert store.verify() == [(post["id"], "body hash mismatch")]


def test_verify_reports_authors_no_longer_trusted(tmp_path: Path) -> None:
    a, b = Identity.generate(), Identity.generate()
    with open_store(tmp_path / "a.db", a) as sa:
        wire = sa.append("listing.post", listing_body(), actor="ada")
    with open_store(tmp_path / "b.db", b, a) as sb:
        sb.ingest([wire])
    with open_store(tmp_path / "b.db", b) as sb:
        assert "no longer trusted" in sb.verify()[0][1]


def test_store_type_is_exported() -> None:
    assert Store.open.__doc__


def test_a_thread_releases_its_connection_and_may_read_again(tmp_path: Path) -> None:
    """The agent's main thread opens the store, then only waits: it hands its connection
    back (``release``), and a thread that reads again gets a new one."""
    with open_store(tmp_path / "n.db", Identity.generate()) as store:
        store.append("listing.post", listing_body("Bike"), actor="ada")
        opened = len(store._conns)
        store.release()
        assert len(store._conns) == opened - 1
        store.release()  # none now: nothing to do
        assert [row[0] for row in store._conn().execute("SELECT title FROM listings")] == ["Bike"]
        assert len(store._conns) == opened
