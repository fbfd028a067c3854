"""The connectivity checks phones and computers make when they join a network.

Each operating system fetches one known plain-HTTP URL. If the answer is what it
expects it decides it is online; anything else (a redirect, another page) makes it
open its captive-portal sign-in sheet; no answer at all makes it say "no internet".
This is the one list of those URLs and answers in ``node``: ``meshhub diag portal``
plays them like a phone would. (``node`` must not import ``portal``; the portal's
own table in ``portal/captive/probes.py`` should import this one.)

Sources: Apple's ``captive.apple.com/hotspot-detect.html`` (body contains
"Success"); Android/ChromeOS ``generate_204`` (HTTP 204, empty); Windows NCSI
``connecttest.txt`` ("Microsoft Connect Test"); Firefox ``success.txt`` ("success\\n");
NetworkManager's ``nmcheck.gnome.org`` ("NetworkManager is online").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["PROBES", "CaptiveProbe"]


@dataclass(frozen=True)
class CaptiveProbe:
    """One operating system's check and the answer that means "online" to it.

    ``match`` is how the OS compares the body: ``exact`` (the whole body) or
    ``contains`` (the expected text anywhere in it).
    """

    system: str
    host: str
    path: str
    status: int
    body: str
    match: Literal["exact", "contains"] = "exact"
    user_agent: str = "Mozilla/5.0"

    @property
    def url(self) -> str:
        """The URL as the operating system requests it."""
        return f"http://{self.host}{self.path}"

    def succeeds(self, status: int, body: str) -> bool:
        """Whether this answer makes the operating system consider itself online."""
        if status != self.status:
            return False
        if self.match == "contains":
            return self.body in body
        return body == self.body


APPLE_SUCCESS = "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"

#: The probes ``meshhub diag portal`` plays, one per family of systems.
PROBES: tuple[CaptiveProbe, ...] = (
    CaptiveProbe("Apple (iPhone, iPad, Mac)", "captive.apple.com", "/hotspot-detect.html",
                 200, "Success", "contains", "CaptiveNetworkSupport-481.0.1 wispr"),
    CaptiveProbe("Android and ChromeOS", "connectivitycheck.gstatic.com", "/generate_204",
                 204, ""),
    CaptiveProbe("Windows", "www.msftconnecttest.com", "/connecttest.txt", 200,
                 "Microsoft Connect Test"),
    CaptiveProbe("Firefox", "detectportal.firefox.com", "/success.txt", 200, "success\n"),
    CaptiveProbe("Linux (NetworkManager)", "nmcheck.gnome.org", "/check_network_status.txt",
                 200, "NetworkManager is online", "contains"),
)
