"""The connectivity checks of phones and computers, and the exact answer each expects.

Every operating system fetches a known plain-HTTP URL when it joins a network. If the
answer is exactly what it expects, it decides it is online; anything else (here: a
redirect to the welcome page) makes it open its captive-portal sheet. The gate's
port-80 redirect (and, on a node without uplink, dnsmasq's answer to every name)
brings these requests to the portal with their original ``Host`` header, so a probe is
recognised by its path, by its host, or (Apple) by its user agent. Sources for each
answer are listed in ``docs/captive.md``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
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
