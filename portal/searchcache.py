"""Search results kept until the content changes: one query, one FTS run, however many ask.

A search everyone was told about ("water", after an announcement) arrives from
hundreds of phones. Anonymous readers' identical requests are answered whole by
:mod:`portal.pagecache`; but every resident who opened the welcome page carries
a session cookie (its CSRF token), and those requests pass the page cache by.
Here the store's answer itself (the count and one page of hits) is kept, for any
reader, under the normalised query, page number and page size, and used only
while it is exactly what the store would answer now:

* no write was committed since (``PRAGMA data_version`` on a never-writing
  connection, :class:`portal.pagecache.ChangeWatcher`, moves on every commit by
  any process: a post, replication, the CLI);
* no listing or notice has expired since (the next expiry moment, read before
  the search ran, on the store's clock).

Memory is bounded: at most :data:`MAX_ENTRIES` answers, least recently used out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.store.models import SearchHit
from portal.pagecache import ChangeWatcher, LazyWatcher, store_watcher

#: Where the cache lives in ``app.extensions``.
EXTENSION = "meshhub.searchcache"
#: Answers kept at most (each a count and one page of hits: a few kB).
MAX_ENTRIES = 128

Answer = tuple[int, tuple[SearchHit, ...]]


@dataclass(frozen=True)
class _Entry:
    version: int  # PRAGMA data_version when the search began
    until: float | None  # the next expiry moment (store clock) when the search began
    answer: Answer


class SearchCache:
    """The store's search answers, each valid until the content changes."""

    def __init__(self, watcher_factory: Callable[[], ChangeWatcher],
                 max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._watcher = LazyWatcher(watcher_factory)
        self._entries: OrderedDict[tuple[str, int, int], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def answer(self, query: str, number: int, size: int,
               search: Callable[[], Answer]) -> Answer:
        """``search()``'s answer for page ``number`` (of ``size``) of ``query``: kept
        from an earlier call while the content is unchanged, else run and kept."""
        watcher = self._watcher.get()
        version = watcher.version()
        key = (query, number, size)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.version == version and (
                    entry.until is None or watcher.now() < entry.until):
                self._entries.move_to_end(key)
                return entry.answer
        until = watcher.next_expiry(version)  # before searching: errs on the early side
        found = search()
        with self._lock:
            self._entries[key] = _Entry(version, until, found)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return found

    def content_version(self) -> int:
        """The content database's version now (``PRAGMA data_version``): it moves on every
        commit by any process, so a value kept with it is current while it is unchanged."""
        return self._watcher.get().version()

    def close(self) -> None:
        """Forget every answer and close the watcher's connection."""
        with self._lock:
            self._entries.clear()
        self._watcher.close()


def search_cache(app: Any) -> SearchCache:
    """The app's search cache (made on first use)."""
    found: SearchCache | None = app.extensions.get(EXTENSION)
    if found is None:
        found = app.extensions.setdefault(EXTENSION, SearchCache(store_watcher(app)))
    return found
