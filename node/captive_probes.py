"""The connectivity checks phones and computers make when they join a network.

Each operating system fetches one known plain-HTTP URL. If the answer is what it
expects it decides it is online; anything else (a redirect, another page) makes it
open its captive-portal sign-in sheet; no answer at all makes it say "no internet".

This is the one table of those checks: the portal (``portal/captive/views.py``)
recognises a request with :func:`classify` and answers with the :class:`Probe`'s
exact answer once the phone is let through, and ``meshhub diag portal`` plays
:data:`PROBES` like a phone would and judges the answer as that system does.
Sources for each answer are listed in ``docs/captive.md``.
"""

from __future__ import annotations

from typing import Literal

from node.frozen import frozen

__all__ = ["BY_HOST", "BY_PATH", "PROBES", "CaptiveProbe", "Probe", "classify"]


@frozen
class Probe:
    """One family of checks and the answer that means "online" to it."""

    name: str
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"
    #: After acceptance, send the browser to the hub instead of a fixed body.
    to_hub: bool = False


APPLE = Probe("apple", 200, "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>",
              "text/html; charset=utf-8")
ANDROID = Probe("android", 204, "")  # Android, ChromeOS, Chrome: 204 and nothing else
WINDOWS = Probe("windows", 200, "Microsoft Connect Test")
WINDOWS_LEGACY = Probe("windows-ncsi", 200, "Microsoft NCSI")
WINDOWS_REDIRECT = Probe("windows-redirect", 302, "", to_hub=True)
FIREFOX = Probe("firefox", 200, "success\n")
FIREFOX_CANONICAL = Probe(
    "firefox-canonical", 200,
    '<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>',
    "text/html; charset=utf-8")
NETWORKMANAGER = Probe("networkmanager", 200, "NetworkManager is online\n")
FEDORA = Probe("fedora", 200, "OK")
UBUNTU = Probe("ubuntu", 204, "")  # Ubuntu's NetworkManager: empty answer expected

#: Probes recognised by their path, whatever the Host.
BY_PATH: dict[str, Probe] = {
    "/hotspot-detect.html": APPLE,
    "/library/test/success.html": APPLE,
    "/generate_204": ANDROID,
    "/gen_204": ANDROID,
    "/connecttest.txt": WINDOWS,
    "/ncsi.txt": WINDOWS_LEGACY,
    "/redirect": WINDOWS_REDIRECT,
    "/success.txt": FIREFOX,
    "/canonical.html": FIREFOX_CANONICAL,
    "/check_network_status.txt": NETWORKMANAGER,
    "/nm-check.txt": NETWORKMANAGER,
    "/static/hotspot.txt": FEDORA,
}

#: Probes recognised by their Host (any path).
BY_HOST: dict[str, Probe] = {
    "captive.apple.com": APPLE,
    "connectivitycheck.gstatic.com": ANDROID,
    "connectivitycheck.android.com": ANDROID,
    "clients3.google.com": ANDROID,
    "www.msftconnecttest.com": WINDOWS,
    "www.msftncsi.com": WINDOWS_LEGACY,
    "detectportal.firefox.com": FIREFOX,
    "nmcheck.gnome.org": NETWORKMANAGER,
    "connectivity-check.ubuntu.com": UBUNTU,
}


def classify(host: str, path: str, user_agent: str) -> Probe | None:
    """The probe this request is, or ``None`` for an ordinary request.

    Apple devices use several hosts and random paths but always the
    ``CaptiveNetworkSupport`` user agent; the others are known by path or host.
    """
    if "CaptiveNetworkSupport" in user_agent:
        return APPLE
    if path in BY_PATH:
        return BY_PATH[path]
    return BY_HOST.get(host.lower().rstrip("."))


@frozen
class CaptiveProbe:
    """One operating system's check as it makes it, and how it judges the answer.

    ``answer`` is the :class:`Probe` whose answer means "online"; ``match`` is how
    the system compares the body: ``exact`` (the whole body) or ``contains`` (the
    ``expect`` text anywhere in it, e.g. Apple looks for "Success").
    """

    system: str
    host: str
    path: str
    answer: Probe
    match: Literal["exact", "contains"] = "exact"
    expect: str = ""
    user_agent: str = "Mozilla/5.0"

    @property
    def url(self) -> str:
        """The URL as the operating system requests it."""
        return f"http://{self.host}{self.path}"

    def succeeds(self, status: int, body: str) -> bool:
        """Whether this answer makes the operating system consider itself online."""
        if status != self.answer.status:
            return False
        if self.match == "contains":
            return self.expect in body
        return body == self.answer.body


#: The checks ``meshhub diag portal`` plays, one per family of systems.
PROBES: tuple[CaptiveProbe, ...] = (
    CaptiveProbe("Apple (iPhone, iPad, Mac)", "captive.apple.com", "/hotspot-detect.html",
                 APPLE, "contains", "Success", "CaptiveNetworkSupport-481.0.1 wispr"),
    CaptiveProbe("Android and ChromeOS", "connectivitycheck.gstatic.com", "/generate_204",
                 ANDROID),
    CaptiveProbe("Windows", "www.msftconnecttest.com", "/connecttest.txt", WINDOWS),
    CaptiveProbe("Firefox", "detectportal.firefox.com", "/success.txt", FIREFOX),
    # NetworkManager: "the body starts with the expected response" (NetworkManager.conf(5)).
    CaptiveProbe("Linux (NetworkManager)", "nmcheck.gnome.org", "/check_network_status.txt",
                 NETWORKMANAGER, "contains", "NetworkManager is online"),
)
