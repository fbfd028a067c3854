"""The gate's part of an emergency broadcast (:mod:`node.broadcast`): hold everyone back.

Two sets of the gate's table (:mod:`node.net.render_nftables`) do it:

* ``broadcast`` (type ``ifname``) holds the access point's name while a broadcast is in
  force, with a timeout at its end: the kernel ends it on time even if the agent is down;
* ``notice_read`` holds ``address . MAC`` of the devices whose resident pressed "I have
  read this", until the broadcast's end.

While the access point is in ``broadcast``, a device not in ``notice_read`` is treated as
one that never accepted: its port-80 traffic goes to the portal (which shows the notice
first), its DNS to the walled resolver on an uplink node, and everything else it sends is
dropped. Acceptances (``allowed``) are left as they are, so reading the notice is enough
to be let through again. A new broadcast empties ``notice_read``: everyone reads it.
"""

from __future__ import annotations

import logging
import threading
import time

from node.broadcast import Broadcast
from node.frozen import frozen
from node.gate.manager import GateManager
from node.net.render_nftables import BROADCAST_SET, READ_SET

log = logging.getLogger("meshhub.gate")

@frozen
class Held:
    """The broadcast the gate enforces: its entry id, notice id and end (Unix seconds)."""

    id: str
    notice: str
    ends_at: int


class BroadcastGate:
    """Puts the broadcast in force into the gate's sets, and records who has read it."""

    def __init__(self, manager: GateManager) -> None:
        self.manager = manager
        self.held: Held | None = None
        self._lock = threading.Lock()  # the watcher and a test (or a CLI) may both enforce

    def _where(self, name: str) -> str:
        return f"inet {self.manager.table} {name}"

    def enforce(self, found: Broadcast | None, now: float | None = None) -> bool:
        """Make the gate hold ``found`` (None: no broadcast); whether anything changed.

        One ``nft`` transaction. The same broadcast again changes nothing; a new one
        empties ``notice_read``; none empties both sets.
        """
        wanted = None if found is None else Held(found.id, found.notice, found.ends_at)
        with self._lock:
            return self._enforce(wanted, now)

    def _enforce(self, wanted: Held | None, now: float | None) -> bool:
        if wanted == self.held:
            return False
        moment = time.time() if now is None else now
        script = f"flush set {self._where(BROADCAST_SET)}\n"
        if wanted is None or self.held is None or wanted.id != self.held.id:
            script += f"flush set {self._where(READ_SET)}\n"
        if wanted is not None:
            seconds = max(1, int(wanted.ends_at - moment))
            script += (f'add element {self._where(BROADCAST_SET)} '
                       f'{{ "{self.manager.interface}" timeout {seconds}s }}\n')
        self.manager.nft_script(script)
        self.held = wanted
        until = "" if wanted is None else time.strftime("%Y-%m-%d %H:%M UTC",
                                                        time.gmtime(wanted.ends_at))
        log.warning("gate: emergency broadcast %s", f"in force until {until}" if until
                    else "ended")
        return True

    def active(self, now: float | None = None) -> Held | None:
        """The broadcast held, if its end is still ahead."""
        moment = time.time() if now is None else now
        return self.held if self.held is not None and self.held.ends_at > moment else None

    def seen_by(self, ip: str, mac: str | None, now: float | None = None
                ) -> tuple[Held | None, bool]:
        """The broadcast held (if its end is ahead) and whether ``ip``/``mac`` has read it.

        Both are read under the lock :meth:`enforce` holds while it changes the sets and
        :attr:`held`: a probe never pairs the emptied ``notice_read`` of an ending (or
        new) broadcast with the broadcast before it, which sent a resident who had read
        it back to the notice.
        """
        with self._lock:
            held = self.active(now)
            if held is None or mac is None:
                return held, False
            return held, self.manager.has_element(READ_SET, ip, mac)

    def mark_read(self, ip: str, mac: str, now: float | None = None) -> bool:
        """Record that ``ip``/``mac`` read the notice, until the broadcast ends; False when
        no broadcast is held."""
        with self._lock:  # not into a set that enforce() is emptying meanwhile
            held = self.active(now)
            if held is None:
                return False
            moment = time.time() if now is None else now
            self.manager.add_element(READ_SET, ip, mac, max(1, int(held.ends_at - moment)))
            return True
