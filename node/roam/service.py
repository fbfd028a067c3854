"""Accept once, roam everywhere: the agent's roaming component (in memory only).

A phone accepted here (the gate's ``allow``) becomes one entry, ``(day, tag, until)``
(:mod:`node.roam.keys`): ``until`` is when its acceptance ends. The entry is announced
at once to the neighbours' agents (``POST /roam/v1/announce``,
:mod:`node.roam.messages`), which keep it in memory and pass the same signed bytes on
to their own neighbours (a flood, each announcement once per node by its ``id``).
Every :data:`GOSSIP_SECONDS` each node also sends the entries it knows, signed by
itself and not passed on, so a node that was cut off or just started learns them from
its neighbours within a minute or so. When a device takes a lease here (or its probe
asks the gate), the gate asks :meth:`RoamService.until` with its MAC: each day key of
the entries known gives one tag to look up; a match lets the device through until its
``until``.

What is kept: entries (tag, day, expiry) in a dict, dropped when they expire; the ids
of recent announcements (for replays). Nothing goes to disk, the store, the signed
log, the logs or the metrics besides counts.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from node.agent_client import AgentClient, AgentError, NodeKeys
from node.identity import Identity
from node.logs import OnceLogger
from node.roam.keys import day_key, day_number, device_tag
from node.roam.messages import (
    MAX_AGE_SECONDS,
    MAX_AHEAD_SECONDS,
    MAX_ENTRIES,
    MAX_MESSAGE_BYTES,
    Announcement,
    Entry,
    Refused,
    build,
    parse,
)

log = logging.getLogger("meshhub.roam")

#: Seconds between two rounds of "what I know" to the neighbours.
GOSSIP_SECONDS = 60.0
#: Seconds one POST to a neighbour may take.
SEND_TIMEOUT_SECONDS = 2.0
#: Seconds after which an announcement a neighbour did not take (no answer in time, a
#: refusal) is sent to it once more: a flood is sent once, so a neighbour busy at that
#: moment would otherwise learn of the acceptance only at the next gossip round.
RETRY_SECONDS = 2.0
ANNOUNCE_PATH = "/roam/v1/announce"
STATUS_PATH = "/roam/v1/status"

#: ``send(base_url, body)``: POST an announcement to one neighbour's agent (None: the
#: signed POST of :func:`post_announcement`).
Sender = Callable[[str, bytes], None]


class _RoamClient(AgentClient):
    """Requests to one neighbour's ``/roam/v1`` endpoints (signed, answers checked)."""

    prefix = "/roam/v1"
    user_agent = "meshhub-roam/1"


def post_announcement(base_url: str, body: bytes, identity: Identity | None = None,
                      keys: NodeKeys | None = None) -> None:
    """POST ``body`` to ``base_url``'s ``/roam/v1/announce`` (a plain ``http://host:port``),
    signed for the node there and its answer checked as every agent-to-agent request is
    (``Meshhub-Auth``, :mod:`node.agent_auth`) when ``identity`` is given; raises OSError
    on failure."""
    try:
        client = _RoamClient(base_url, timeout=SEND_TIMEOUT_SECONDS, identity=identity,
                             keys=keys)
        with client.exchange("POST", ANNOUNCE_PATH.removeprefix(client.prefix), body,
                             {"Content-Type": "application/json"}) as answer:
            client.read(answer, "POST /announce", 4096)
            status = answer.status
    except ValueError as exc:
        raise OSError(f"{base_url}: not an agent's http:// address ({exc})") from None
    except AgentError as exc:
        raise OSError(str(exc)) from None
    if status not in (204, 409):  # 409: it had this one already
        raise OSError(f"{base_url} answered {status}")


class RoamService:
    """The roaming entries this node knows, and their gossip (an agent component)."""

    name = "roam"

    def __init__(self, secret: bytes, identity: Identity, is_registered: Callable[[str], bool],
                 *, clock: Callable[[], float] = time.time, send: Sender | None = None,
                 gossip_seconds: float = GOSSIP_SECONDS) -> None:
        self._secret = secret
        self._identity = identity
        self._is_registered = is_registered
        self._clock = clock
        #: Which node answers at each neighbour's URL (registered nodes only).
        self.keys = NodeKeys(trusted=is_registered)
        self._send = send or (lambda url, body: post_announcement(url, body, identity,
                                                                  self.keys))
        self._gossip_seconds = gossip_seconds
        self._lock = threading.Lock()
        self._known: dict[tuple[int, str], int] = {}
        self._seen: dict[str, int] = {}
        self._keys: dict[int, bytes] = {}
        self.counters: Counter[str] = Counter()
        self._sources: list[Callable[[], Iterable[str]]] = []
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        #: Announcements to send once more: (when, neighbour, body), under ``_lock``.
        self._retries: list[tuple[float, str, bytes]] = []
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._problems = OnceLogger(log)

    # --- what the gate asks ------------------------------------------------------
    def accepted(self, mac: str, seconds: int) -> None:
        """A device was accepted here for ``seconds``: remember it and tell the mesh."""
        now = self._clock()
        day = day_number(now)
        entry = Entry(day, device_tag(self._key(day), mac), int(now + seconds))
        with self._lock:
            self._known[(entry.day, entry.tag)] = entry.until
        self.counters["accepted_here"] += 1
        self._outbox.put(build(self._identity, [entry], now, flood=True))

    def until(self, mac: str) -> int | None:
        """When the acceptance of device ``mac`` on some node of the mesh ends, or None."""
        now = self._clock()
        with self._lock:
            self._prune(now)
            days = {day for day, _tag in self._known}
            found = [self._known.get((day, device_tag(self._key(day), mac))) for day in days]
        best = max((u for u in found if u is not None and u > now), default=None)
        if best is not None:
            self.counters["let_through"] += 1
        return best

    def forget_everywhere(self) -> None:
        """Drop every acceptance known here and tell the whole mesh to do the same (this
        node was switched to ``forced``: everyone accepts again)."""
        with self._lock:
            self._known.clear()
        self.counters["forgotten"] += 1
        self._outbox.put(build(self._identity, [], self._clock(), flood=True, forget=True))

    # --- what neighbours send ----------------------------------------------------
    def receive(self, raw: bytes) -> Announcement:
        """Check and merge one announcement; :class:`Refused` (counted) when refused.
        A new flooded one is passed on to the neighbours unchanged."""
        now = self._clock()
        try:
            announcement = parse(raw, now, self._is_registered)
            with self._lock:
                self._prune(now)
                if announcement.id in self._seen:
                    raise Refused("replayed", "this announcement was received before")
                self._seen[announcement.id] = announcement.sent
                if announcement.forget:
                    self._known.clear()
                    self.counters["forgotten"] += 1
                for entry in announcement.entries:
                    if entry.until > now and entry.until > self._known.get(
                            (entry.day, entry.tag), 0):
                        self._known[(entry.day, entry.tag)] = entry.until
        except Refused as refused:
            self.counters[f"refused_{refused.reason}"] += 1
            raise
        self.counters["received"] += 1
        if announcement.flood and announcement.origin != self._identity.public_key:
            self._outbox.put(announcement.raw)
        return announcement

    def counts(self) -> dict[str, int]:
        """A copy of the counters (for ``/metrics``); copying a dict is atomic in CPython,
        so a counter bumped by another thread meanwhile cannot break it."""
        return dict(self.counters)

    def status(self) -> dict[str, Any]:
        """Counts only (never a tag): entries known now and the counters."""
        with self._lock:
            self._prune(self._clock())
            known = len(self._known)
        return {"known": known, "counters": dict(sorted(self.counters.items()))}

    # --- the agent component -----------------------------------------------------
    def add_peer_source(self, source: Callable[[], Iterable[str]]) -> None:
        """A callable listing neighbours' agent base URLs (babeld's neighbours, settings)."""
        self._sources.append(source)

    def start(self) -> None:
        """Start sending (idempotent)."""
        if self._thread is not None:
            return
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="meshhub-roam-send")
        self._thread = threading.Thread(target=self._run, name="meshhub-roam")
        self._thread.start()

    def poll(self) -> str:
        """``up`` while the sender runs."""
        return "up" if self._thread is not None and self._thread.is_alive() else "down"

    def stop(self) -> None:
        """Stop sending and forget everything (idempotent)."""
        if self._thread is not None:
            self._outbox.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            self._known.clear()
            self._seen.clear()
            self._retries.clear()

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """``POST /roam/v1/announce`` and ``GET /roam/v1/status`` on the agent's API."""
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == STATUS_PATH and method == "GET":
            return _json(start_response, "200 OK", self.status())
        if path != ANNOUNCE_PATH:
            return _json(start_response, "404 Not Found", {"error": "not-found"})
        if method != "POST":
            return _json(start_response, "405 Method Not Allowed", {"error": "post-only"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_MESSAGE_BYTES:
            self.counters["refused_oversized" if length > 0 else "refused_malformed"] += 1
            return _json(start_response, "413 Content Too Large" if length > 0
                         else "400 Bad Request", {"error": "size"})
        raw = environ["wsgi.input"].read(length)
        try:
            self.receive(raw)
        except Refused as refused:
            code = {"replayed": "409 Conflict", "unregistered": "403 Forbidden",
                    "bad-signature": "403 Forbidden"}.get(refused.reason, "400 Bad Request")
            return _json(start_response, code, {"error": refused.reason})
        start_response("204 No Content", [])
        return []

    # --- inside ----------------------------------------------------------------------
    def _key(self, day: int) -> bytes:
        key = self._keys.get(day)
        if key is None:
            key = self._keys[day] = day_key(self._secret, day)
            for old in [d for d in self._keys if d < day - 40]:
                del self._keys[old]
        return key

    def _prune(self, now: float) -> None:
        """Forget expired entries and ids too old to be replayed (lock held)."""
        for key in [k for k, until in self._known.items() if until <= now]:
            del self._known[key]
        horizon = now - MAX_AGE_SECONDS - MAX_AHEAD_SECONDS
        for ident in [i for i, sent in self._seen.items() if sent < horizon]:
            del self._seen[ident]

    def _chunks(self) -> Iterator[list[Entry]]:
        with self._lock:
            self._prune(self._clock())
            entries = [Entry(d, t, u) for (d, t), u in self._known.items()]
        for start in range(0, len(entries), MAX_ENTRIES):
            yield entries[start:start + MAX_ENTRIES]

    def _run(self) -> None:
        next_round = time.monotonic() + self._gossip_seconds
        while True:
            with self._lock:
                wake = min([next_round, *(due for due, _peer, _body in self._retries)])
            try:
                body = self._outbox.get(timeout=max(0.0, wake - time.monotonic()))
            except queue.Empty:
                body = b""
            if body is None:
                return
            if body:
                self._fan_out(body)
            self._send_retries()
            if time.monotonic() >= next_round:
                next_round = time.monotonic() + self._gossip_seconds
                for chunk in self._chunks():
                    self._fan_out(build(self._identity, chunk, self._clock(), flood=False))

    def _send_retries(self) -> None:
        """Send the announcements whose retry is due, each to its neighbour (a last time)."""
        now = time.monotonic()
        with self._lock:
            due = [r for r in self._retries if r[0] <= now]
            self._retries = [r for r in self._retries if r[0] > now]
        pool = self._pool
        if pool is None:
            return
        for _when, peer, body in due:
            pool.submit(self._send_one, peer, body, last=True)

    def _peers(self) -> set[str]:
        found: set[str] = set()
        for source in self._sources:
            try:
                found.update(url.rstrip("/") for url in source())
            except Exception as exc:  # discovery failing must not stop roaming
                self._problems.warning("peers", "roam: cannot list neighbours: %s", exc)
        return found

    def _fan_out(self, body: bytes) -> None:
        pool = self._pool
        if pool is None:
            return
        for peer in self._peers():
            pool.submit(self._send_one, peer, body)

    def _send_one(self, peer: str, body: bytes, *, last: bool = False) -> None:
        """Send ``body`` to ``peer``; if it does not take it, once more
        :data:`RETRY_SECONDS` later (unless this was that ``last`` try)."""
        try:
            self._send(peer, body)
            self.counters["sent"] += 1
            self._problems.resolved(peer)
        except OSError as exc:
            self.counters["send_failed"] += 1
            self._problems.warning(peer, "roam: %s did not take an announcement: %s", peer, exc)
            if not last:
                with self._lock:
                    self._retries.append((time.monotonic() + RETRY_SECONDS, peer, body))
                self._outbox.put(b"")  # wake the sender to wait for the retry's time


def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def open_roam_service(cfg: Any, identity: Identity,
                      is_registered: Callable[[str], bool]) -> RoamService:
    """The service for a node's configuration; ConfigError when the secret is missing."""
    from pathlib import Path

    from node.roam.keys import SECRET_FILE_NAME, load_secret

    path = Path(cfg.roam.secret_file) if cfg.roam.secret_file else \
        cfg.data_dir / SECRET_FILE_NAME
    return RoamService(load_secret(path), identity, is_registered)
