"""The portal renders the Markdown of the posts that arrived by replication.

The agent stores a replicated post with a plain stand-in for its Markdown and lists
its subject as unrendered (:meth:`node.store.Store.ingest` with ``render_later``):
it never shows a post, and rendering at every hop cost each agent a Python start-up
per post (node/markdown.py says more). The portal, which shows them, renders them
(:meth:`node.store.Store.render_pending`, through its renderer child):

* when it starts: what arrived while it was down;
* whenever SQLite's ``PRAGMA data_version`` moves (a commit by another process: the
  agent's replication, the CLI), looked at every :data:`POLL_SECONDS`. Only then is
  the list read, on the same read-only connection; only when it lists something does
  the portal open a writing connection (closed again after).

Served behind nginx, the page files' thread (:mod:`portal.pagefiles`) looks, before
it looks for changed items: the rendering's own commit moves ``data_version`` again,
so the pages are rebuilt with the rendered HTML. Otherwise :func:`start` runs the
look in a small thread of its own. Until a text is rendered its stand-in is shown:
the text escaped, paragraphs kept.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from node.logs import OnceLogger
from node.store import Store
from node.store.store import unrendered_left

log = logging.getLogger(__name__)

#: How often the look runs on its own thread (seconds); the page files' is as often.
POLL_SECONDS = 0.2


class PendingRenders:
    """Renders what replication left unrendered in the store, after each commit.

    ``store`` gives the portal's store (:func:`portal.db.services`), asked for when first
    needed: a store that cannot be opened yet leaves the portal starting as before
    (its pages say so), and is tried again at every look.
    """

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store
        self._problems = OnceLogger(log)
        self._version: int | None = None  # data_version at the last look
        self._conn: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, conn: sqlite3.Connection) -> int:
        """If the database changed since the last look, render every subject left
        unrendered; how many it rendered. ``conn``: the calling thread's connection,
        always the same one (read-only will do; ``data_version`` is per connection).
        A failure is logged (once), and the look after the next commit tries again."""
        try:
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if version == self._version:
                return 0
            self._version = version
            if not unrendered_left(conn):
                return 0
            done = self.render_all()
            self._problems.resolved("render")
            return done
        except Exception as error:  # keep the portal's thread alive; report it
            self._problems.warning("render", "rendering replicated posts failed (%s: %s); "
                                   "trying again after the next change",
                                   type(error).__name__, error)
            return 0

    def render_all(self) -> int:
        """Render every subject left unrendered, then close this thread's writing
        connection (the next may be minutes away); how many were rendered."""
        store, done = self._store(), 0
        try:
            while not self._stop.is_set():
                count = store.render_pending()
                if not count:
                    break
                done += count
        finally:
            store.release()
        if done:
            log.info("rendered %d replicated posts", done)
        return done

    # --- its own thread (no page files) ------------------------------------------------
    def start(self) -> None:
        """Look every :data:`POLL_SECONDS` in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="meshhub-render",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (if it runs) and close its connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self) -> None:
        while True:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(
                        f"{self._store().path.resolve().as_uri()}?mode=ro", uri=True,
                        check_same_thread=False, isolation_level=None)
                    self._conn.execute("PRAGMA cache_size = -64")  # one short index range
                    self._problems.resolved("open")
                self.check(self._conn)
            except Exception as error:  # the store cannot be opened (yet): the next look
                self._problems.warning("open", "rendering replicated posts: cannot open the "
                                       "store (%s: %s)", type(error).__name__, error)
            if self._stop.wait(POLL_SECONDS):
                return


def start(app: Any, config: Any) -> PendingRenders:
    """The portal's renderer of replicated posts: handed to the page files' thread when
    this node keeps page files (it looks there), else running in a thread of its own."""
    from portal import pagefiles
    from portal.db import services

    pending = PendingRenders(lambda: services(app).store)
    if not pagefiles.enabled(config):
        pending.start()
    return pending
