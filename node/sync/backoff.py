"""Per-peer exponential back-off and the health record of every peer.

A peer that is unreachable, or sends garbage or tampered data, is left alone
for ``base * 2^(failures-1)`` seconds (capped, with ±20 % jitter so that the
neighbours of a flapping node do not retry in step). A success resets it.
Nothing a peer sends ever makes it *more* trusted: trust is only the store's
signature and registry check.

Records are kept per node, not per address: ``record(url)`` names whose record
an outcome at ``url`` goes to — the node's key once that node's signed answer
came from the URL, else the URL (:meth:`node.agent_client.NodeKeys.record`).
So a node keeps its record when it moves to another address or port, and what
a box at some address does (a rogue announcing a node's address or name) stays
on that address's record, never on the node's.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from node.agent_client import ByteCounter
from node.identity import fingerprint

#: Peer records kept beyond the current neighbours (peers that notified, then left).
MAX_PEER_RECORDS = 64


@dataclass
class PeerState:
    """What this node knows about one peer's behaviour."""

    url: str  #: the address it was last seen at
    failures: int = 0
    retry_at: float = 0.0  #: monotonic time before which the peer is left alone
    last_ok: float | None = None  #: wall-clock time of the last successful exchange
    last_error: str | None = None
    bad_data: int = 0  #: how many times the peer sent something refused
    rounds: int = 0
    accepted: int = 0  #: entries ingested from it
    counter: ByteCounter = field(default_factory=ByteCounter)
    node: str | None = None  #: the node's key, once it answered signed (else: an address)

    def to_json(self, now: float) -> dict[str, Any]:
        """A status record (``meshhub sync status``)."""
        return {"url": self.url, "node": None if self.node is None else fingerprint(self.node),
                "failures": self.failures,
                "backoff_seconds": round(max(0.0, self.retry_at - now), 1),
                "last_ok": None if self.last_ok is None else int(self.last_ok),
                "last_error": self.last_error, "bad_data": self.bad_data,
                "rounds": self.rounds, "accepted": self.accepted,
                "bytes_sent": self.counter.sent, "bytes_received": self.counter.received}


class Backoff:
    """Back-off state of every peer this node has talked to."""

    def __init__(self, base_seconds: float, max_seconds: float, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None,
                 record: Callable[[str], str] = lambda url: url) -> None:
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.record = record  #: whose record an outcome at a URL goes to (module docstring)
        self._monotonic = monotonic
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._peers: dict[str, PeerState] = {}
        self._lock = threading.Lock()

    def peer(self, url: str) -> PeerState:
        """The record of the peer at ``url``: its node's, or the URL's (created on first use)."""
        owner = self.record(url)
        with self._lock:
            state = self._peers.get(owner)
            if state is None:
                state = self._peers[owner] = PeerState(url, node=None if owner == url
                                                       else owner)
                if owner != url and url in self._peers:  # first signed answer from it
                    _inherit(state, self._peers.pop(url))
            state.url = url
            return state

    def ready(self, url: str) -> bool:
        """Whether ``url`` may be contacted now."""
        return self.peer(url).retry_at <= self._monotonic()

    def failed(self, url: str, reason: str, *, bad_data: bool) -> float:
        """Record a failure; returns the seconds until the next attempt."""
        state = self.peer(url)
        with self._lock:
            state.failures += 1
            state.bad_data += int(bad_data)
            state.last_error = reason
            delay = min(self.max_seconds, self.base_seconds * 2.0 ** min(state.failures - 1, 30))
            delay *= 1 + self._rng.uniform(-0.2, 0.2)
            state.retry_at = self._monotonic() + delay
        return delay

    def succeeded(self, url: str) -> None:
        """Record a successful exchange: the back-off starts again from zero."""
        state = self.peer(url)
        with self._lock:
            state.failures = 0
            state.retry_at = 0.0
            state.last_ok = time.time()
            state.last_error = None  # the status shows the peer's present state

    def carry_over(self, old: str, new: str) -> None:
        """``new`` is the same peer as ``old`` at another address (the same key notified
        from a new port): it inherits ``old``'s failures and back-off, so that moving to a
        new port does not escape them."""
        before, after = self.peer(old), self.peer(new)
        with self._lock:
            if before is not after and before.retry_at > after.retry_at:
                after.failures = max(after.failures, before.failures)
                after.bad_data = max(after.bad_data, before.bad_data)
                after.retry_at = before.retry_at
                after.last_error = before.last_error

    def prune(self, keep: set[str]) -> None:
        """Forget peers not in ``keep`` beyond :data:`MAX_PEER_RECORDS` (least recently
        successful first), so that a stream of new addresses cannot grow the status."""
        keep = {self.record(url) for url in keep}
        with self._lock:
            extra = [u for u in self._peers if u not in keep]
            if len(extra) <= MAX_PEER_RECORDS:
                return
            extra.sort(key=lambda u: (self._peers[u].last_ok or 0.0, self._peers[u].retry_at))
            for url in extra[:len(extra) - MAX_PEER_RECORDS]:
                del self._peers[url]

    def states(self) -> list[PeerState]:
        """Every peer's record, by URL."""
        with self._lock:
            return [self._peers[k] for k in sorted(self._peers)]

    def now(self) -> float:
        """The monotonic clock used for ``retry_at``."""
        return self._monotonic()


def _inherit(state: PeerState, earlier: PeerState) -> None:
    """A URL's record joins its node's once the node's signed answer came from it."""
    state.failures, state.retry_at = earlier.failures, earlier.retry_at
    state.last_ok, state.last_error = earlier.last_ok, earlier.last_error
    state.bad_data, state.rounds = earlier.bad_data, earlier.rounds
    state.accepted = earlier.accepted
    state.counter.add(earlier.counter.sent, earlier.counter.received)
