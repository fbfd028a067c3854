"""Crash safety: SIGKILL the portal during a burst of posts; nothing acknowledged is lost."""

from __future__ import annotations

import http.client
import sqlite3
import threading
from pathlib import Path

from node.config import load_config
from node.hub import open_hub
from tests.portal.demo_process import Browser, DemoProcess

THREADS = 4
POSTS_PER_THREAD = 200
KILL_AFTER_ACKS = 40


def test_acknowledged_posts_survive_a_sigkill(tmp_path: Path) -> None:
    demo = DemoProcess.start(tmp_path / "demo")
    acknowledged: list[str] = []
    failed: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()
    try:
        browser = Browser(demo.url)
        browser.sign_in("amira", demo.passwords()["amira"])
        token = browser.token("/organisers/notices/new")

        def burst(worker: int) -> None:
            for number in range(POSTS_PER_THREAD):
                title = f"Crash test notice {worker}-{number}"
                try:
                    status = browser.post("/organisers/notices/new", {
                        "csrf_token": token, "title": title,
                        "body": "Posted during the crash-safety test."})
                except (OSError, http.client.HTTPException):
                    # The server is gone: refused, reset, or killed in the middle of its
                    # answer (IncompleteRead, BadStatusLine are not OSErrors).
                    with lock:
                        failed.append(title)
                    return
                with lock:
                    if status == 302:
                        acknowledged.append(title)
                        if len(acknowledged) >= KILL_AFTER_ACKS:
                            enough.set()
                    else:
                        failed.append(f"{title}: HTTP {status}")

        workers = [threading.Thread(target=burst, args=(n,)) for n in range(THREADS)]
        for worker in workers:
            worker.start()
        assert enough.wait(timeout=60), f"posts were not accepted: {failed[:3]}"
        demo.kill()  # mid-burst: other posts are in flight right now
        for worker in workers:
            worker.join(timeout=30)
    finally:
        enough.set()
        demo.kill()
    assert failed, "the kill should have interrupted some posts"
    assert all("HTTP" not in reason for reason in failed), failed[:3]
    assert not _agents_of(tmp_path / "demo"), "the demo's agent outlived the killed demo"

    database = tmp_path / "demo" / "data" / "hub.sqlite3"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = {row[0] for row in conn.execute("SELECT title FROM notices")}
    conn.close()
    print(f"acknowledged {len(acknowledged)}, interrupted {len(failed)}, stored {len(stored)}")
    missing = [title for title in acknowledged if title not in stored]
    assert not missing, f"{len(missing)} acknowledged posts lost: {missing[:5]}"

    # The store itself opens cleanly and every entry's signature still checks.
    store, _ = open_hub(load_config(tmp_path / "demo" / "node.toml"))
    try:
        assert store.verify() == []
        titles = {notice.title for notice in store.notices(now=0)}
        assert set(acknowledged) <= titles
    finally:
        store.close()


def _agents_of(folder: Path, wait: float = 5.0) -> list[int]:
    """PIDs of agents still running for the demo in ``folder`` after ``wait`` seconds."""
    import time

    import psutil

    deadline = time.monotonic() + wait
    while True:
        found = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if "agent" in cmdline and any(str(folder) in part for part in cmdline):
                found.append(process.info["pid"])
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
