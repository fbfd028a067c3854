"""The sync service: pulls from neighbours, pushes notifications, fetches library files.

Two threads, both stopped by :meth:`SyncService.stop`:

- ``meshhub-sync`` pulls entries. It wakes when a neighbour notifies it (at
  once: notifications that come during a round are pulled together in the
  next, see :data:`~node.timing.SYNC_COALESCE_SECONDS`), every
  ``sync.interval_seconds`` (± jitter)
  for a round with every neighbour, and every
  :data:`~node.timing.SYNC_WATCH_SECONDS` to notice entries appended by
  other processes (the portal). Whenever the log changed it tells every
  neighbour at once (push-on-change), handing over the new entries themselves
  when they are few and small (``POST /sync/v1/push``): a neighbour that
  takes them needs no pull.
- ``meshhub-sync-files`` fetches the library files this node lacks.

Entries stored by replication hold a plain stand-in for their Markdown, and their
subjects are listed as unrendered (:meth:`node.store.Store.render_pending`): the agent
renders nothing, the portal does (portal/rendering.py), since only the portal shows a
post. Rendering at every hop cost each agent a Python start-up per post (a child
process), 200 of them per post on a 200-node lab (docs/scale.md).

Neighbours come from callables (:meth:`SyncService.add_peer_source`): the
static ``sync.peers`` always, the mesh's discovered neighbours when the
agent feeds them. :meth:`sync_now` runs one round synchronously (the
``meshhub sync now`` command and tests).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from node import timing
from node.agent_client import AgentError, ByteCounter, NodeKeys, normalise_url
from node.blobs import BlobStore
from node.canonical import EncodingError
from node.errors import StoreError
from node.frozen import frozen
from node.identity import fingerprint
from node.logs import OnceLogger
from node.peer_sources import PeerSource, gather_urls
from node.store.entries import entry_id
from node.store.store import IngestReport
from node.sync import files as _files
from node.sync import protocol
from node.sync.backoff import MAX_PEER_RECORDS, Backoff
from node.sync.client import PeerClient
from node.trust.registry import SnapshotRejected

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.store import Store
    from node.trust.registry import RegistryTrust

_T = TypeVar("_T")

log = logging.getLogger("meshhub.sync")
#: Senders whose last notifying address is remembered (to carry their back-off over).
MAX_SENDERS = 256
#: Neighbours told of a change at once (a radio mesh node has a handful; more wait).
MAX_CONCURRENT_NOTIFY = 8
#: Largest list of entries pushed with a notification (encoded); more is pulled.
PUSH_BYTES = 32 * 1024
MIB = 1024 * 1024


@frozen
class SyncSettings:
    """How the service behaves; :meth:`from_config` reads the ``[sync]`` section."""

    interval_seconds: float = 60.0
    jitter_ratio: float = 0.2
    peers: tuple[str, ...] = ()
    max_page_entries: int = 500
    max_request_bytes: int = 262144
    push: bool = True
    backoff_max_seconds: float = 300.0
    backoff_base_seconds: float = timing.SYNC_BACKOFF_BASE_SECONDS
    coalesce_seconds: float = timing.SYNC_COALESCE_SECONDS
    watch_seconds: float = timing.SYNC_WATCH_SECONDS
    watch_again_seconds: tuple[float, ...] = timing.SYNC_WATCH_AGAIN_SECONDS
    defer_seconds: float = timing.SYNC_PUSH_DEFER_SECONDS
    timeout_seconds: float = timing.SYNC_HTTP_TIMEOUT_SECONDS
    pull_deadline_seconds: float = timing.SYNC_PULL_DEADLINE_SECONDS
    concurrent_pulls: int = timing.SYNC_CONCURRENT_PULLS
    notify_burst: int = timing.SYNC_NOTIFY_BURST
    notify_window_seconds: float = timing.SYNC_NOTIFY_WINDOW_SECONDS
    quota_bytes: int | None = None  #: library quota; None: unlimited
    max_pages_per_pull: int = 200
    #: Submissions older than this are erased by this node's rule, so not asked for.
    submission_retention_days: int = 30

    @classmethod
    def from_config(cls, cfg: NodeConfig, **overrides: Any) -> SyncSettings:
        """The settings of ``cfg`` (``[sync]`` and ``portal.library_quota_mb``)."""
        values: dict[str, Any] = {
            "interval_seconds": float(cfg.sync.interval_seconds),
            "jitter_ratio": float(cfg.sync.jitter_ratio),
            "peers": tuple(cfg.sync.peers),
            "max_page_entries": cfg.sync.max_page_entries,
            "max_request_bytes": cfg.sync.max_request_bytes,
            "push": cfg.sync.push,
            "backoff_max_seconds": float(cfg.sync.backoff_max_seconds),
            "quota_bytes": cfg.portal.library_quota_mb * MIB,
            "submission_retention_days": cfg.privacy.submission_retention_days,
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class PeerRound:
    """What one pull from one peer did (``meshhub sync now`` prints these)."""

    peer: str
    outcome: str  #: in sync, pulled, nothing to pull, backed off, failed, self, local error
    accepted: int = 0
    duplicates: int = 0
    restored: int = 0  #: missing bodies this peer sent back
    pages: int = 0
    registry: str | None = None
    bytes: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON record of the round."""
        return dict(self.__dict__)


@dataclass
class FileReport:
    """What one pass of the file fetcher did."""

    fetched: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    not_found: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON record of the pass."""
        return dict(self.__dict__)


class SyncService:
    """Replication of one node's store and library with its neighbours."""

    def __init__(self, store: Store, blobs: BlobStore, settings: SyncSettings | None = None,
                 *, registry: RegistryTrust | None = None,
                 own_port: Callable[[], int | None] = lambda: None,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``clock``: the monotonic clock that peers' back-off and the notification
        limit count in (a test holds it still, so that neither ends under a slow step)."""
        self.store = store
        self.blobs = blobs
        self.settings = settings or SyncSettings()
        self.registry = registry
        self.own_port = own_port
        self.fingerprint = fingerprint(store.identity.public_key)
        #: Which node answers at each neighbour's URL (signed requests go to it alone).
        self.keys = NodeKeys(trusted=lambda key: store.trust.is_trusted(key),
                             registered_at=self._registered_at)
        #: Peers' records, by node (their key) once they answered signed, else by URL.
        self.backoff = Backoff(self.settings.backoff_base_seconds,
                               self.settings.backoff_max_seconds, record=self.keys.record,
                               monotonic=clock)
        self._rng = rng or random.Random()  # noqa: S311 - jitter only
        self._sources: list[PeerSource] = [lambda: self.settings.peers]
        self._self_urls: set[str] = set()
        self._problems = OnceLogger(log)
        self._pending: set[str | None] = set()
        self._lock = threading.Lock()
        self._pull_locks: dict[str, threading.Lock] = {}  #: one pull at a time per peer
        #: The address each sender (key, or address) last asked to be pulled from.
        self._sender_urls: OrderedDict[str, str] = OrderedDict()
        self._notifiers = _NotifyLimiter(self.settings.notify_burst,
                                         self.settings.notify_window_seconds, clock=clock)
        #: Held by the pull thread through each round (its targets, pulls and announce).
        self._round_lock = threading.Lock()
        self._wake = threading.Event()
        self._files_wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._notified: dict[str, str] = {}  #: the digest each neighbour was last told
        #: The digest each neighbour last told this node (it needs not be told it back).
        self._heard: dict[str, str] = {}
        self.last_files = FileReport()
        #: The last look for library files found some that no neighbour had yet.
        self._files_missing = False
        #: The last look left files unfetched (no neighbour had them, a failure, the quota
        #: or the disk): look again a round's interval later. Otherwise the file thread
        #: sleeps until the store changes.
        self._files_left = False
        #: Files arrived since the last announcement: tell the neighbours (the digest is
        #: the same, so they would not ask otherwise).
        self._files_arrived = False
        self.last_round_at: float | None = None
        self.rounds = 0
        #: Seconds between looks for entries other processes appended; longer once the
        #: store's folder is watched (:meth:`watched`), which calls :meth:`local_change`.
        self._watch_seconds = self.settings.watch_seconds
        self._watch_due = False
        #: Which of ``watch_again_seconds`` comes next after a reported write (None: none).
        self._look_again: int | None = None
        #: Entries came by push (in a server thread): the pull thread tells the neighbours.
        self._announce_due = False
        #: Neighbours that answered ``/push`` with 404 (an earlier release): told by notify.
        self._no_push: set[str] = set()
        #: The digest each neighbour is being or was last told (set before the request,
        #: unlike ``_notified``): a push from it of the same digest crossed this node's.
        self._sent: dict[str, str] = {}
        #: For each author (the most recent :data:`MAX_SENDERS`), the neighbours that
        #: pushed this node one of its entries before this node told them it: they get
        #: that author's posts from elsewhere, so their push of the next is waited for
        #: (``defer_seconds``) before this node pushes to them.
        self._upstream: OrderedDict[str, set[str]] = OrderedDict()
        #: Pushes held back for those neighbours: (when, digest, entries, neighbours).
        self._deferred: list[tuple[float, str, list[dict[str, Any]], list[str]]] = []
        #: The neighbours as :meth:`peers` last listed them (a sender's URL is looked up
        #: here first: listing them asks babeld's state and zeroconf, at every push).
        self._known_peers: frozenset[str] = frozenset()

    # --- neighbours ------------------------------------------------------------------
    def _registered_at(self, host: str) -> str | None:
        """The key the installed registry gives mesh address ``host`` (None: not said)."""
        return self.registry.key_at(host) if self.registry is not None else None

    def add_peer_source(self, source: PeerSource) -> None:
        """Add a callable listing neighbours' base URLs (e.g. from babeld + zeroconf)."""
        self._sources.append(source)

    def peers(self) -> list[str]:
        """Current neighbours: the union of every source, normalised, without this node."""
        found = gather_urls(
            self._sources, normalise_url,
            source_failed=lambda exc: self._problems.warning(
                "peer-source", "sync: listing neighbours failed: %s", exc),
            bad_url=lambda url, exc: self._problems.warning(
                f"bad-peer:{url}", "sync: ignoring peer: %s", exc))
        peers = sorted(found - self._self_urls)
        self._known_peers = frozenset(peers)
        return peers

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the pull/push thread and the file thread (a first round runs at once)."""
        if self._threads:
            return
        self._pending.add(None)
        self._wake.set()
        self._files_wake.set()
        self._threads = [threading.Thread(target=self._run, name="meshhub-sync"),
                         threading.Thread(target=self._run_files, name="meshhub-sync-files")]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads and wait for them (an unfinished file transfer is kept)."""
        self._stop.set()
        self._wake.set()
        self._files_wake.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def close(self) -> None:
        """Stop the threads and close the store (for a service from ``open_sync_service``)."""
        self.stop()
        self.store.close()

    # --- scheduling --------------------------------------------------------------------
    def schedule_pull(self, url: str | None) -> None:
        """Pull from ``url`` soon (None: from every neighbour); bursts are coalesced."""
        with self._lock:
            self._pending.add(url)
        self._wake.set()

    def local_change(self) -> None:
        """The store's files changed (another process may have appended): look now,
        rather than at the next poll (the agent's folder watch calls this)."""
        self._watch_due = True
        self._wake.set()

    def watched(self, fallback_seconds: float) -> None:
        """The store's folder is watched, :meth:`local_change` is called on each change:
        poll only every ``fallback_seconds`` (a safety net), not every ``watch_seconds``."""
        self._watch_seconds = max(self.settings.watch_seconds, fallback_seconds)

    def _next_interval(self) -> float:
        spread = self.settings.jitter_ratio
        return self.settings.interval_seconds * (1 + self._rng.uniform(-spread, spread))

    def _run(self) -> None:
        watch = _Watcher(self.store)
        next_round = time.monotonic() + self._next_interval()
        next_watch = time.monotonic() + self._watch_seconds
        try:
            while not self._stop.is_set():
                deferred = min((d[0] for d in self._deferred), default=next_round)
                timeout = max(0.0, min(next_round, next_watch, deferred) - time.monotonic())
                if self._wake.wait(timeout):
                    if self.settings.coalesce_seconds > 0:
                        self._stop.wait(self.settings.coalesce_seconds)
                    self._wake.clear()
                if self._stop.is_set():
                    break
                with self._round_lock:
                    next_round, next_watch = self._round(watch, next_round, next_watch)
                # Asleep until the next round (a minute at the defaults) or a neighbour's
                # notification: opening a connection again then (0.4-3 ms) costs less than
                # keeping one open meanwhile.
                self.store.release()
        except Exception:
            log.exception("sync: the pull thread failed; replication stopped until restart")
        finally:
            watch.close()

    def _round(self, watch: _Watcher, next_round: float, next_watch: float
               ) -> tuple[float, float]:
        """One wake-up of the pull thread: pull what is due, announce a change; the next times."""
        with self._lock:
            pending, self._pending = self._pending, set()
            pushed, self._announce_due = self._announce_due, False
        before = watch.vector
        now = time.monotonic()
        self._tell_deferred(now, watch.digest)
        if now >= next_round:
            pending.add(None)
            next_round = now + self._next_interval()
        asked = {p for p in pending if p is not None}  # notifiers, even when not neighbours
        peers = self.peers() if None in pending else None  # listed once a round, if needed
        targets = sorted(asked | set(peers or ()))
        results = self._pull_all(targets)
        changed = pushed or any(r.accepted for r in results)
        restored = any(r.restored for r in results)
        told, self._watch_due = self._watch_due, False
        tick = now >= next_watch or told
        # A look only for another process's commit (the folder watch reported a write, or
        # a look again after one), not the regular one that also tells neighbours that
        # became ready again.
        again = tick and (told or self._look_again is not None)
        if tick:
            seen = watch.changed()
            changed |= seen
            next_watch = time.monotonic() + self._next_look(told, seen)
        arrived, self._files_arrived = self._files_arrived, False
        if again and not (changed or restored or arrived or pending):
            # Found none: most such reports are this node's own commits (each entry a
            # neighbour pushes is one), so this is most looks while a post passes through.
            return next_round, next_watch
        if peers is None:
            peers = self.peers()
        self.backoff.prune(set(peers))
        if changed:
            self._files_wake.set()
            watch.changed()  # refresh the cached digest after our own ingest
        if changed or tick or restored or arrived:
            # Restored bodies and fetched files leave the digest as it was: tell the
            # neighbours anyway, so that one lacking them asks (a notify is answered
            # "pull" while it lacks any).
            fresh = self._fresh(before, watch.vector) if changed else []
            self.announce(watch.digest, force=restored or arrived, fresh=fresh, peers=peers,
                          defer=True)
        return next_round, next_watch

    def _tell_deferred(self, now: float, digest: str) -> None:
        """Push the entries held back for neighbours that were expected to push them
        first (:meth:`announce`) and have not told this node the same digest by now. A
        hold whose digest is no longer this node's is dropped: the newer digest was
        announced to those neighbours since (a neighbour lacking the older entries too
        then pulls them). ``digest``: this node's, as last looked at."""
        due = [d for d in self._deferred if d[0] <= now]
        if not due:
            return
        self._deferred = [d for d in self._deferred if d[0] > now]
        for _when, held, fresh, urls in due:
            if held != digest:
                continue
            late = [u for u in urls if held not in (self._notified.get(u), self._heard.get(u))]
            if late:
                # They did not push it: not upstream of this node for these authors now.
                self._mark_upstream(late, fresh, upstream=False)
                self.announce(held, fresh=fresh, peers=late)

    def _next_look(self, told: bool, seen: bool) -> float:
        """Seconds until the next look for other processes' commits. Told of a write
        and not seeing it yet, look again soon, a few times: the kernel reports SQLite's
        last write to the WAL a moment before the commit is visible
        (``watch_again_seconds``); once a change is seen, once more after
        ``watch_seconds`` (another commit may have come with the same report); else
        only at the safety net's period. Each look costs a wake-up of every agent at
        every hop of every post (on a lab of 200, on two processors), so no more."""
        again = (*self.settings.watch_again_seconds, self.settings.watch_seconds)
        if told or (seen and self._look_again is not None):
            self._look_again = len(again) - 1 if seen else 0
        if self._look_again is None or self._look_again >= len(again):
            self._look_again = None
            return self._watch_seconds
        self._look_again += 1
        return again[self._look_again - 1]

    def _fresh(self, before: dict[str, int], after: dict[str, int]) -> list[dict[str, Any]]:
        """The entries this node got since ``before`` (its vector when it last told its
        neighbours), to push with the notification; empty when they are more than
        :data:`~node.sync.protocol.MAX_PUSH_ENTRIES` or :data:`PUSH_BYTES` (then the
        neighbours pull them)."""
        grown = {a: seq for a, seq in after.items() if seq > before.get(a, 0)}
        if not grown or sum(seq - before.get(a, 0) for a, seq in grown.items()) \
                > protocol.MAX_PUSH_ENTRIES:
            return []
        entries = self.store.entries_between(before, grown)
        return entries if len(protocol.dumps(entries)) <= PUSH_BYTES else []

    def _run_files(self) -> None:
        while not self._stop.is_set():
            # Asleep until the store changes (the pull thread wakes it: entries arrived,
            # or another process appended), unless the last look left files to fetch:
            # then again a round's interval later. It looked at every round before, with
            # nothing changed (a store connection and the library's items each time: 11
            # ms on a lab agent, every 10 s at the lab's timings; docs/scale.md).
            self._files_wake.wait(self.settings.interval_seconds if self._files_left
                                  else None)
            self._files_wake.clear()
            if self._stop.is_set():
                break
            try:
                self.fetch_files()
            except Exception as exc:  # keep the thread alive; report it
                self._problems.warning("files", "sync: fetching library files failed: %s: %s",
                                       type(exc).__name__, exc)
            finally:
                # It looks once a round interval: opening a connection then (0.4-3 ms) costs
                # less than keeping one open between looks (~145 KiB).
                self.store.release()

    # --- one round ---------------------------------------------------------------------
    def sync_now(self, peers: Iterable[str] | None = None, *, files: bool = True
                 ) -> tuple[list[PeerRound], FileReport | None]:
        """One pull from each peer (default: every neighbour), then the missing files.

        What it stores keeps its stand-in, as the agent's rounds do: the portal renders it
        (at once when it runs, else when it starts), so a person's ``meshhub sync now``
        neither waits for the Markdown libraries nor renders what the portal renders anyway.
        """
        urls = [normalise_url(p) for p in peers] if peers is not None else self.peers()
        rounds = [self._guarded_pull(url, force=True) for url in urls]
        report = self.fetch_files(urls) if files else None
        if any(r.accepted or r.restored for r in rounds):
            self.announce(force=any(r.restored for r in rounds))
        return rounds, report

    def _pull_all(self, urls: list[str]) -> list[PeerRound]:
        """Pull from every peer in ``urls``, a few at once, each within its deadline."""
        if len(urls) <= 1 or self.settings.concurrent_pulls <= 1:
            return [self._guarded_pull(url) for url in urls if not self._stop.is_set()]
        workers = min(len(urls), self.settings.concurrent_pulls)
        with ThreadPoolExecutor(workers, thread_name_prefix="meshhub-sync-pull") as pool:
            futures = [pool.submit(self._in_worker, self._guarded_pull, url) for url in urls]
            return [f.result() for f in futures]

    def _in_worker(self, work: Callable[[str], _T], url: str) -> _T:
        """``work(url)`` in a round's worker thread, whose store connection is closed after:
        the worker ends with the round, and its connection (~145 KiB) would otherwise stay
        open until the next round's first worker opens one (:meth:`Store._conn`)."""
        try:
            return work(url)
        finally:
            self.store.release()

    def _guarded_pull(self, url: str, *, force: bool = False) -> PeerRound:
        if self._stop.is_set():
            return PeerRound(url, "stopped")
        with self._lock:
            lock = self._pull_locks.setdefault(url, threading.Lock())
        with lock:
            result = self.pull_from(url, force=force)
        with self._lock:
            self.rounds += 1
            self.last_round_at = time.time()
            if len(self._pull_locks) > 4 * MAX_PEER_RECORDS:  # forget peers long gone
                self._pull_locks = {u: k for u, k in self._pull_locks.items() if k.locked()}
        return result

    def notified(self, sender: str, url: str | None, digest: str | None = None) -> bool:
        """A notification from ``sender`` (its key, or its address): pull from ``url`` soon,
        unless the sender exceeded its rate (then False, and nothing is scheduled).
        ``digest``: the sender's, which it then needs not be told."""
        if not self._admit(sender, url, digest):
            return False
        self.schedule_pull(url)
        if self._files_missing:  # the sender may have got a file this node looked for
            self._files_wake.set()
        return True

    def received_push(self, sender: str, url: str | None, push: protocol.Push) -> bool | None:
        """Entries pushed by ``sender`` (its key, or its address), from its agent at ``url``:
        store those that follow what this node holds, after the checks of every entry
        (:meth:`Store.ingest`: signature, registered author, shape, order), and tell the
        neighbours. True when this node will still pull from ``url`` (it lacks more,
        or an entry has to wait: its author is not trusted here yet, or earlier entries
        are missing), False when nothing more is needed, None when that pull would put
        the sender over its rate (:data:`~node.timing.SYNC_NOTIFY_BURST`: only pushes
        that make this node pull count, so a burst of posts, each pushed on its own,
        is not refused). Raises :class:`~node.sync.protocol.PushRefused`
        when an entry is refused (the pull scheduled then backs the sender off if it
        sends it again)."""
        self._remember(sender, url, push.digest)
        if url is not None and url in self._known_peers:
            # Before this node told it this digest: it got these from elsewhere.
            self._mark_upstream([url], push.entries,
                                upstream=self._sent.get(url) != push.digest)
        mine = self.registry.serial if self.registry is not None else None
        newer_registry = push.registry is not None and self.registry is not None \
            and (mine is None or push.registry > mine)
        # A newer registry first: the pull installs it (GET /digest), then takes entries.
        take = [] if newer_registry else self._takeable(push.entries)
        if take:
            try:
                report = self.store.ingest(take, render_later=True)
            except (sqlite3.Error, StoreError) as exc:  # this node's storage, not the sender
                self._problems.warning("store", "sync: cannot store pushed entries: %s; "
                                       "nothing was changed, will pull", _root_cause(exc))
                report = IngestReport()
            if report.accepted:
                with self._lock:
                    self._announce_due = True
                self._wake.set()
            if report.rejected:
                entry, reason = report.rejected[0]
                if self._allowed(sender):
                    self.schedule_pull(url)
                self._problems.warning(f"push:{sender[:64]}", "sync: %s pushed an entry that "
                                       "was refused (%s: %s); pulling instead", sender[:64],
                                       (entry or "?")[:12], reason)
                raise protocol.PushRefused(f"entry {(entry or '?')[:12]} refused: {reason}")
        if push.digest == self.store.digest() and not self.lacks_bodies() \
                and not self.lacks_files():
            return False
        if not self._allowed(sender):
            return None
        self.schedule_pull(url)
        if self._files_missing:
            self._files_wake.set()
        return True

    def _takeable(self, wires: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The pushed entries that extend this node's log: of trusted authors, each the
        next of its author. The others wait for a pull (registry first, entries in
        order); one already held is not checked again. A malformed one is kept, for
        :meth:`Store.ingest` to refuse with the reason."""
        mine = self.store.vector()
        trust = self.store.trust
        expected: dict[str, int] = {}
        take: list[dict[str, Any]] = []
        for wire in sorted(wires, key=_order):
            place = _author_seq(wire)
            if place is None:
                take.append(wire)
                continue
            author, seq = place
            if not trust.is_trusted(author):
                continue
            if seq != expected.get(author, mine.get(author, 0) + 1):
                continue  # held already, or earlier ones are missing: the pull decides
            expected[author] = seq + 1
            take.append(wire)
        return take

    def _admit(self, sender: str, url: str | None, digest: str | None) -> bool:
        """Count a notification from ``sender`` against its rate (False: over it) and
        remember where it is pulled from, and which digest its neighbour ``url`` holds."""
        if not self._allowed(sender):
            return False
        self._remember(sender, url, digest)
        return True

    def _allowed(self, sender: str) -> bool:
        """Count one pull asked by ``sender`` against its rate; False (logged once) when
        it is over it."""
        if self._notifiers.allow(sender):
            return True
        self._problems.warning(f"notify-rate:{sender[:64]}", "sync: %s notifies too often; "
                               "ignoring its notifications for a while", sender[:64])
        return False

    def _remember(self, sender: str, url: str | None, digest: str | None) -> None:
        """Where ``sender`` is pulled from (its back-off follows it from port to port),
        and which digest its neighbour ``url`` holds (not to be told back)."""
        if url is not None and digest is not None and (url in self._known_peers
                                                       or url in self.peers()):
            self._heard[url] = digest  # it holds this: telling it would be in vain
        if url is not None:
            with self._lock:
                previous = self._sender_urls.pop(sender, None)
                self._sender_urls[sender] = url
                while len(self._sender_urls) > MAX_SENDERS:
                    self._sender_urls.popitem(last=False)
            if previous is not None and previous != url:
                self.backoff.carry_over(previous, url)  # a peer is its key, not its port

    def _client(self, url: str, timeout: float, counter: ByteCounter,
                deadline: float | None = None) -> PeerClient:
        """A client for ``url`` whose requests this node's key signs."""
        return PeerClient(url, timeout=timeout, counter=counter, identity=self.store.identity,
                          deadline=deadline, keys=self.keys)

    def pull_from(self, url: str, *, force: bool = False) -> PeerRound:
        """Compare digests with ``url``; if they differ, pull the entries this node lacks.

        ``force`` ignores a running back-off (an operator's ``sync now``).
        """
        url = normalise_url(url)
        state = self.backoff.peer(url)
        if not force and not self.backoff.ready(url):
            return PeerRound(url, "backed off", error=state.last_error)
        counter = ByteCounter()  # this round's bytes only, whatever else runs meanwhile
        client = self._client(url, self.settings.timeout_seconds, counter,
                              deadline=time.monotonic() + self.settings.pull_deadline_seconds)
        result = PeerRound(url, "in sync")
        try:
            theirs = client.digest()
            if theirs.node == self.fingerprint:
                self._self_urls.add(url)
                result.outcome = "self"
                return result
            result.registry = self._registry_from(client, theirs.registry)
            if theirs.digest != self.store.digest():
                self._pull_entries(client, result)
            if self.lacks_bodies():
                self._pull_bodies(client, result)
            self.backoff.succeeded(url)
            self._problems.resolved(f"peer:{url}")
        except AgentError as exc:
            delay = self.backoff.failed(url, exc.reason, bad_data=exc.bad_data)
            result.outcome, result.error = "failed", exc.reason
            what = "sent data that was refused" if exc.bad_data else "unreachable"
            self._problems.warning(f"peer:{url}", "sync: peer %s %s: %s; backing off %.0f s "
                                   "(later failures are counted, see 'meshhub sync status')",
                                   url, what, exc.reason, delay)
        except (sqlite3.Error, StoreError) as exc:
            cause = _root_cause(exc)
            result.outcome, result.error = "local error", cause
            self._problems.warning("store", "sync: cannot store entries from %s: %s; nothing "
                                   "was changed, will retry", url, cause)
        finally:
            result.bytes = counter.total
            state = self.backoff.peer(url)  # its node's record, if it answered signed
            state.rounds += 1
            state.counter.add(counter.sent, counter.received)
            state.accepted += result.accepted
        return result

    def _registry_from(self, client: PeerClient, serial: int | None) -> str | None:
        if self.registry is None or serial is None:
            return None
        mine = self.registry.serial
        if mine is not None and serial <= mine:
            return None
        data = client.registry()
        if data is None:
            return None
        try:
            installed = self.registry.offer(data, client.url)
        except SnapshotRejected as exc:
            raise AgentError(client.url, exc.reason, bad_data=True) from None
        if installed:
            log.info("sync: installed registry snapshot %s from %s", self.registry.serial,
                     client.url)
            return f"installed serial {self.registry.serial}"
        return None

    def _pull_entries(self, client: PeerClient, result: PeerRound) -> None:
        theirs = client.vector(self.store.vector(), self.own_port())
        mine = self.store.vector()
        trust = self.store.trust
        wanted = {a for a, seq in theirs.items() if seq > mine.get(a, 0) and trust.is_trusted(a)}
        for author in sorted(a for a, seq in theirs.items()
                             if seq > mine.get(a, 0) and a not in wanted):
            self._problems.warning(f"untrusted:{author}", "sync: %s offers entries by node key "
                                   "%s, which this node does not trust (not registered, or "
                                   "revoked); not pulling them", client.url, fingerprint(author))
        result.outcome = "nothing to pull"
        if not wanted:
            return
        result.outcome = "pulled"
        for _ in range(self.settings.max_pages_per_pull):
            mine = self.store.vector()
            # Authors not wanted are asked "after the seq you told me", i.e. nothing.
            since = {a: s for a, s in theirs.items() if a not in wanted}
            since.update({a: mine[a] for a in wanted if a in mine})
            entries, more = client.entries(since, self.settings.max_page_entries)
            result.pages += 1
            unasked = sum(1 for e in entries if not _asked(e, since))
            if unasked:
                raise AgentError(client.url, f"{unasked} entr{'y' if unasked == 1 else 'ies'} "
                                "not asked for (at or before the sequence numbers sent: a "
                                "replay, or an author this node does not want)", bad_data=True)
            report = self.store.ingest(entries, render_later=True)
            result.accepted += len(report.accepted)
            result.duplicates += len(report.duplicates)
            if report.rejected:
                entry_id, reason = report.rejected[0]
                raise AgentError(client.url, f"{len(report.rejected)} entr"
                                f"{'y' if len(report.rejected) == 1 else 'ies'} refused, first "
                                f"{(entry_id or '?')[:12]}: {reason}", bad_data=True)
            if not more or not report.accepted:
                return

    def lacks_bodies(self) -> bool:
        """Whether this node holds entries whose body is missing (not erased by its rules)."""
        return bool(self.store.missing_bodies(
            1, retention_days=self.settings.submission_retention_days))

    def _pull_bodies(self, client: PeerClient, result: PeerRound) -> None:
        """Ask the peer for the bodies this node lacks; each is checked against its
        ``body_hash`` and restored (docs/replication.md, ``POST /sync/v1/bodies``)."""
        asked: set[str] = set()
        for _ in range(self.settings.max_pages_per_pull):
            ids = [i for i in self.store.missing_bodies(
                len(asked) + protocol.MAX_BODY_IDS,
                retention_days=self.settings.submission_retention_days) if i not in asked]
            ids = ids[:protocol.MAX_BODY_IDS]
            if not ids:
                return
            asked.update(ids)
            wires = client.bodies(ids)
            result.pages += 1
            wanted = set(ids)
            for wire in wires:
                if wire.get("body") is None or _wire_id(wire) not in wanted:
                    raise AgentError(client.url, "POST /bodies: an entry not asked for, or "
                                    "without its body", bad_data=True)
            report = self.store.ingest(wires, render_later=True)
            result.restored += len(report.restored)
            if report.rejected:
                entry_id, reason = report.rejected[0]
                raise AgentError(client.url, f"POST /bodies: entry {(entry_id or '?')[:12]} "
                                f"refused: {reason}", bad_data=True)
            if report.restored:
                log.info("sync: %d missing bod%s restored from %s", len(report.restored),
                         "y" if len(report.restored) == 1 else "ies", client.url)

    # --- push ----------------------------------------------------------------------------
    def announce(self, digest: str | None = None, *, force: bool = False,
                 fresh: list[dict[str, Any]] | None = None,
                 peers: list[str] | None = None, defer: bool = False) -> None:
        """Tell every neighbour this node's digest if it has not heard it yet (push-on-change).

        A neighbour that was backed off or unreachable is told when it is ready
        again (this runs at every watch tick), so a change is never left to the
        periodic round alone. ``force`` tells even neighbours that heard this
        digest (after restoring bodies, which leaves the digest unchanged).
        ``fresh``: the entries that made the change, handed over with the notification
        (``POST /push``) to neighbours that know it; a neighbour that told this node
        its digest is not told the same digest back.
        Neighbours are told at once, in parallel (up to :data:`MAX_CONCURRENT_NOTIFY`):
        one after another, each slow neighbour (up to 2 s) delayed every later one,
        and with it the post's way across the mesh (docs/scale.md). ``peers``: the
        neighbours, when the caller has just listed them.

        ``defer``: a neighbour that pushed this node an earlier entry of each author of
        ``fresh`` before being told it (it gets their posts from elsewhere) is given
        ``defer_seconds`` to push these too; it is pushed to only if it does not (the
        pull thread's next rounds, :meth:`_tell_deferred`). Neighbours held back so are
        not told the digest without the entries meanwhile.
        """
        if not self.settings.push:
            return
        digest = digest or self.store.digest()
        held = set() if force else {u for _when, d, _fresh, urls in self._deferred
                                    if d == digest for u in urls}
        due = [url for url in (self.peers() if peers is None else peers)
               if (force or digest not in (self._notified.get(url), self._heard.get(url)))
               and url not in held and self.backoff.ready(url)]
        later = self._expected(due, fresh) if defer and fresh and not force else []
        if later:
            self._deferred.append((time.monotonic() + self.settings.defer_seconds, digest,
                                   list(fresh or ()), later))
            due = [url for url in due if url not in later]
        tell = partial(self._notify, digest=digest, fresh=fresh or [])
        if len(due) <= 1:  # the usual watch tick: nothing (or one) to tell, no thread
            for url in due:
                tell(url)
            return
        with ThreadPoolExecutor(min(len(due), MAX_CONCURRENT_NOTIFY),
                                thread_name_prefix="meshhub-sync-notify") as pool:
            list(pool.map(lambda url: self._in_worker(tell, url), due))

    def _notify(self, url: str, digest: str, fresh: list[dict[str, Any]]) -> None:
        """``POST /push`` (with ``fresh``) or ``/notify`` to one neighbour; a failure backs
        it off (logged once)."""
        state = self.backoff.peer(url)
        client = self._client(url, min(2.0, self.settings.timeout_seconds), state.counter)
        with self._lock:
            if len(self._sent) >= MAX_SENDERS and url not in self._sent:
                self._sent.clear()
            self._sent[url] = digest
        try:
            pushed = None
            if fresh and url not in self._no_push:
                serial = self.registry.serial if self.registry is not None else None
                pushed = client.push(digest, self.own_port(), serial, fresh)
                if pushed is None:  # an earlier release: it is told, and pulls
                    if len(self._no_push) >= MAX_SENDERS:
                        self._no_push.clear()
                    self._no_push.add(url)
            if pushed is None:
                client.notify(digest, self.own_port())
            self._notified[url] = digest
        except AgentError as exc:
            delay = self.backoff.failed(url, exc.reason, bad_data=exc.bad_data)
            self._problems.warning(f"peer:{url}", "sync: notifying %s failed: %s; backing "
                                   "off %.0f s", url, exc.reason, delay)

    def _expected(self, due: list[str], fresh: list[dict[str, Any]]) -> list[str]:
        """The neighbours of ``due`` that pushed this node an entry of every author of
        ``fresh`` before being told it: they are expected to push these too. None for
        this node's own entries (nobody has them before it)."""
        authors = {place[0] for place in map(_author_seq, fresh) if place is not None}
        if not authors or self.store.identity.public_key in authors \
                or self.settings.defer_seconds <= 0:
            return []
        with self._lock:
            marks = [self._upstream.get(author, set()) for author in authors]
            return [url for url in due if all(url in m for m in marks)]

    def _mark_upstream(self, urls: Iterable[str], entries: list[dict[str, Any]], *,
                       upstream: bool) -> None:
        """Record whether each of ``urls`` gets the authors of ``entries`` from elsewhere
        (it pushed them here before being told them) or not (it did not push them in
        time, or pushed them only after this node had told it)."""
        authors = {place[0] for place in map(_author_seq, entries) if place is not None}
        with self._lock:
            for author in authors:
                marks = self._upstream.pop(author, set())
                for url in urls:
                    if upstream:
                        marks.add(url)
                    else:
                        marks.discard(url)
                if marks:
                    self._upstream[author] = marks
                while len(self._upstream) > MAX_SENDERS:
                    self._upstream.popitem(last=False)

    # --- library files -----------------------------------------------------------------
    def fetch_files(self, peers: Iterable[str] | None = None) -> FileReport:
        """Fetch missing files of live library items from neighbours, within the quota."""
        plan = _files.plan_files(self.store, self.blobs, self.settings.quota_bytes)
        report = FileReport(skipped=[w.to_json(reason) for w, reason in plan.skipped])
        # Neighbours listed only when there is something to fetch from them.
        urls = list(peers) if peers is not None else self.peers() if plan.fetch else []
        for want in plan.fetch:
            if self._stop.is_set():
                break
            outcome = self._fetch_one(want, urls)
            if outcome is True:
                report.fetched.append(want.sha256)
            elif outcome is False:
                report.not_found.append(want.to_json())
            else:
                report.failed.append(want.to_json(outcome))
        for record in report.skipped:
            self._problems.warning(f"skip:{record['sha256']}", "sync: not fetching library file "
                                   "%s (%s): %s", record["sha256"][:12], record["title"],
                                   record["reason"])
        self.last_files = report
        self._files_missing = bool(report.not_found or report.failed)
        self._files_left = bool(self._files_missing or report.skipped)
        if report.fetched:
            # A neighbour that looked for these before this node had them asks again
            # only when told: the next round announces them (:meth:`lacks_files`).
            self._files_arrived = True
            self._wake.set()
        return report

    def lacks_files(self) -> bool:
        """Whether the last look for library files found some no neighbour had: a
        notification is then worth a pull even when the digests are equal (the sender
        may have fetched them since: an item's entry crosses a hop before its file)."""
        return self._files_missing

    def _fetch_one(self, want: _files.WantedFile, urls: list[str]) -> bool | str:
        last_error: str | None = None
        for url in urls:
            if not self.backoff.ready(url):
                continue
            state = self.backoff.peer(url)
            client = self._client(url, self.settings.timeout_seconds, state.counter)
            try:
                if _files.fetch_file(client, self.blobs, want, stop=self._stop.is_set):
                    self._drop_if_unused(want.sha256)
                    log.info("sync: library file %s fetched from %s", want.sha256[:12], url)
                    return True
            except AgentError as exc:
                last_error = exc.reason
                delay = self.backoff.failed(url, exc.reason, bad_data=exc.bad_data)
                self._problems.warning(f"file:{url}:{want.sha256}", "sync: library file from "
                                       "%s refused: %s; backing off %.0f s", url, exc.reason,
                                       delay)
        return last_error if last_error is not None else False

    def _drop_if_unused(self, sha256: str) -> None:
        """An item deleted while its file was in transit: do not keep the file."""
        if not self.store.library_items_by_sha(sha256):
            self.blobs.delete(sha256)

    # --- what others ask ---------------------------------------------------------------
    def digest_doc(self) -> protocol.Digest:
        """This node's ``GET /sync/v1/digest`` answer."""
        vector = self.store.vector()
        return protocol.Digest(self.store.digest(), self.fingerprint, sum(vector.values()),
                               self.registry.serial if self.registry is not None else None)

    def status(self) -> dict[str, Any]:
        """Everything ``meshhub sync status`` shows (also served at ``/sync/v1/status``)."""
        now = self.backoff.now()
        return {"node": self.fingerprint, **self.digest_doc().to_json(),
                "peers_now": self.peers(),
                "peers": [s.to_json(now) for s in self.backoff.states()],
                "rounds": self.rounds,
                "last_round_at": None if self.last_round_at is None else int(self.last_round_at),
                "files": self.last_files.to_json(),
                "problems": self._problems.summary()}


class _NotifyLimiter:
    """At most ``burst`` notifications per sender per ``window`` seconds; few senders kept."""

    def __init__(self, burst: int, window: float, max_senders: int = 256, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.window = window
        self.max_senders = max_senders
        self._clock = clock
        self._seen: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, sender: str) -> bool:
        """Record one notification from ``sender``; False when it is over its rate."""
        now = self._clock()
        with self._lock:
            times = [t for t in self._seen.pop(sender, []) if now - t < self.window]
            allowed = len(times) < self.burst
            if allowed:
                times.append(now)
            self._seen[sender] = times
            while len(self._seen) > self.max_senders:
                self._seen.popitem(last=False)
            return allowed


class _Watcher:
    """Notices commits by any connection or process (``PRAGMA data_version``), cheaply."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self.vector = store.vector()  #: the log's vector as of the last check
        self.digest = store.digest_of(self.vector)  #: and its digest

    def changed(self) -> bool:
        """True when the log's digest differs from the last check."""
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(f"file:{self._store.path}?mode=ro", uri=True)
            (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            version = None
        if version is not None and version == self._version:
            return False
        self._version = version
        self.vector = self._store.vector()
        digest = self._store.digest_of(self.vector)
        changed, self.digest = digest != self.digest, digest
        return changed

    def close(self) -> None:
        """Close the watching connection."""
        if self._conn is not None:
            self._conn.close()


def _asked(wire: dict[str, Any], since: dict[str, int]) -> bool:
    """Whether an entry is after ``since`` for its author (what was asked for)."""
    header = wire.get("header")
    if not isinstance(header, dict):
        return True  # malformed: the store refuses it with the reason
    author, seq = header.get("author"), header.get("seq")
    return not (isinstance(author, str) and isinstance(seq, int) and seq <= since.get(author, 0))


def _author_seq(wire: dict[str, Any]) -> tuple[str, int] | None:
    """(author, seq) of a wire entry's header, or None when either is malformed."""
    header = wire.get("header")
    author = header.get("author") if isinstance(header, dict) else None
    seq = header.get("seq") if isinstance(header, dict) else None
    if not isinstance(author, str) or not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return author, seq


def _order(wire: dict[str, Any]) -> tuple[str, int]:
    """(author, seq) of an entry, for sorting; ("", 0) where they are malformed."""
    return _author_seq(wire) or ("", 0)


def _wire_id(wire: dict[str, Any]) -> str | None:
    """The id an entry's header hashes to, or None if the header cannot be encoded."""
    header = wire.get("header")
    if not isinstance(header, dict):
        return None
    try:
        return entry_id(header)
    except (EncodingError, TypeError, ValueError):
        return None


def _root_cause(exc: BaseException) -> str:
    """The innermost error (a failed ROLLBACK can hide 'database or disk is full')."""
    while exc.__context__ is not None:
        exc = exc.__context__
    return f"{type(exc).__name__}: {exc}"
