"""An emergency broadcast across a running mesh lab, watched by phones that probe as phones do.

Shared by ``tests/lab/test_broadcast_lab.py`` (a 3-node line, in CI) and
``bench/broadcast.py`` (the 10-node line of issue 15). Every phone runs a prober in its
own namespace: one asks as Android does (``/generate_204`` on
``connectivitycheck.gstatic.com``, a 204 means online), the next as Apple does
(``/hotspot-detect.html`` on ``captive.apple.com``), the next reads the RFC 8908 API
(option 114's URL), and so on, every :data:`PROBE_INTERVAL` seconds. Each reports every
change of what it sees, stamped with CLOCK_MONOTONIC (shared by all namespaces), so the
time from the post to each phone's first probe showing the notice is measured, not slept.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from bench.meshlab import meshhub
from bench.netlab import Lab
from node.lab import MeshLab

#: Seconds between two probes of one phone (a phone re-checks on wake, on a network
#: change, and when its RFC 8908 session ends; the figure then adds at most this).
PROBE_INTERVAL = 0.5
KINDS = ("android", "apple", "rfc8908")

PROBER = r"""
import http.client, json, sys, time
host, kind, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
name, path, agent = {
    "android": ("connectivitycheck.gstatic.com", "/generate_204",
                "Dalvik/2.1.0 (Linux; U; Android 14)"),
    "apple": ("captive.apple.com", "/hotspot-detect.html", "CaptiveNetworkSupport-481.0.1 wispr"),
    "rfc8908": (host, "/api/captive", "captive-portal-api"),
}[kind]
last = None
while True:
    started = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, 80, timeout=3)
        c.request("GET", path, headers={"Host": name, "User-Agent": agent,
                                        "Accept": "application/captive+json"})
        r = c.getresponse()
        body = r.read()
        if kind == "rfc8908":
            d = json.loads(body)
            state = ("portal " + d["user-portal-url"]) if d["captive"] else "online"
        elif r.getheader("Location"):
            state = "portal " + r.getheader("Location")
        else:
            state = "online" if r.status in (200, 204) else "status %d" % r.status
        c.close()
    except Exception as exc:
        state = "error " + type(exc).__name__
    if state != last:
        print(json.dumps({"at": time.monotonic(), "wall": time.time(), "state": state}),
              flush=True)
        last = state
    time.sleep(max(0.0, interval - (time.monotonic() - started)))
"""


@dataclass
class Phone:
    """One phone's prober and what it has seen: (monotonic time, state) changes."""

    name: str
    kind: str
    portal: str
    proc: subprocess.Popen[str]
    seen: list[tuple[float, str]] = field(default_factory=list)
    wall: dict[float, float] = field(default_factory=dict)  #: monotonic -> Unix time
    changed: threading.Condition = field(default_factory=threading.Condition)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            report = json.loads(line)
            with self.changed:
                self.seen.append((report["at"], report["state"]))
                self.wall[report["at"]] = report["wall"]
                self.changed.notify_all()

    def wait(self, what: str, since: float, match: str, timeout: float) -> float:
        """The first time after ``since`` this phone saw a state containing ``match``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                hits = [at for at, state in self.seen if at >= since and match in state]
                if hits:
                    return hits[0]
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} ({self.kind}): no {what} within "
                                         f"{timeout:.0f} s; it saw {self.seen[-5:]}")
                self.changed.wait(left)

    def state(self) -> str:
        with self.changed:
            return self.seen[-1][1] if self.seen else ""


def sent_at(lab: MeshLab, node: str) -> float:
    """When the broadcast in force on ``node`` was signed (Unix seconds, the entry's ts).

    The lab's namespaces share the host's clock, so a phone's Unix time compares with it.
    """
    shown = json.loads(meshhub(lab, node, "broadcast", "show"))
    assert shown["active"], shown
    return float(shown["sent_at_ms"]) / 1000


def start_probers(lab: MeshLab) -> list[Phone]:
    """A prober on every node's phone (kinds in turn), each reading its node's portal."""
    phones = []
    for index, node in enumerate(sorted(lab.state.nodes.values(), key=lambda n: n.number)):
        kind, portal = KINDS[index % len(KINDS)], f"10.64.{node.number}.1"
        proc = subprocess.Popen(["ip", "netns", "exec", node.phone_ns, sys.executable, "-c",
                                 PROBER, portal, kind, str(PROBE_INTERVAL)],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        phone = Phone(f"p{node.number}", kind, portal, proc)
        threading.Thread(target=phone.read, name=f"prober-{phone.name}", daemon=True).start()
        phones.append(phone)
    return phones


def stop_probers(phones: list[Phone]) -> None:
    """End every prober and wait for it (its reader thread ends with its pipe)."""
    for phone in phones:
        phone.proc.terminate()
    for phone in phones:
        phone.proc.wait(timeout=10)
        if phone.proc.stdout is not None:
            phone.proc.stdout.close()


def press(net: Lab, ns: str, portal: str, page: str, button: str) -> dict:
    """Open ``page`` on ``portal`` from ``ns`` and submit its form (a plain POST with the
    CSRF token, as a phone's sign-in sheet does without JavaScript)."""
    shown = net.http(ns, portal, page)
    assert shown is not None and shown["status"] == 200, shown
    assert button in shown["body"], shown["body"][:800]
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', shown["body"])
    assert token, shown["body"][:800]
    answer = net.http(ns, portal, page, body=f"csrf_token={token.group(1)}",
                      headers={"Cookie": shown["headers"]["set-cookie"].split(";", 1)[0],
                               "Content-Type": "application/x-www-form-urlencoded"})
    assert answer is not None, f"no answer to {button} on {portal}{page}"
    return answer
