"""``meshhub diag portal``: join like a phone and say what a resident would see.

The steps are a phone's: a DHCP lease (scapy's DISCOVER/REQUEST on the interface's
own MAC, so the node's gate sees this computer as it would a phone), the RFC 8908
Captive Portal API named by option 114, then each operating system's check
(:mod:`node.captive_probes`): its host name resolved through the DNS server the
lease names, its URL fetched from that address with the original ``Host``.

Why scapy and not ``udhcpc``: it is already needed for ``diag dhcp``, it hears
every server's offer (a rogue answering first is reported), and it changes nothing
on the computer by itself. The leased address is then borrowed on the interface
only while the checks run (:func:`node.diag.link.borrowed_address`), unless the
interface holds it already.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Literal
from urllib.parse import urlsplit

from node.captive_probes import PROBES, CaptiveProbe
from node.diag.dhcp import DHCP_TIMEOUT, Lease, obtain_lease
from node.diag.link import borrowed_address
from node.diag.phone import DnsAnswer, HttpAnswer, Pin, fetch, resolve
from node.frozen import frozen

Result = Literal["online", "sign-in", "no-dns", "no-answer"]
NO_INTERNET = "the phone would say it has no internet, and no sign-in sheet would open"


@frozen
class ProbeOutcome:
    """What one operating system's check got, and what its user would see."""

    system: str
    url: str
    address: str | None
    status: int | None
    location: str | None
    result: Result
    verdict: str


@frozen
class ApiOutcome:
    """The RFC 8908 API as a phone that reads option 114 would find it."""

    url: str | None
    captive: bool | None
    user_portal_url: str | None
    seconds_remaining: int | None
    verdict: str


@frozen
class PortalReport:
    """The whole visit: the lease, the API and every check."""

    iface: str
    lease: Lease
    borrowed: bool
    api: ApiOutcome
    probes: tuple[ProbeOutcome, ...]

    @property
    def summary(self) -> str:
        """One sentence for the resident's experience overall."""
        results = {p.result for p in self.probes}
        if results == {"sign-in"}:
            return "a resident would see the sign-in sheet."
        if results == {"online"}:
            return "a resident's phone would consider itself online (no sign-in sheet)."
        if results <= {"no-dns", "no-answer"}:
            return ("a resident's phone would say 'connected, no internet' and show no "
                    "sign-in sheet: the hub would be reachable only by typing its address.")
        return "systems would disagree (see above): residents would not all see the same."

    @property
    def consistent(self) -> bool:
        """Whether every system ends up the same way (all sheet, or all online)."""
        return {p.result for p in self.probes} in ({"sign-in"}, {"online"})


def judge(probe: CaptiveProbe, dns: DnsAnswer, answer: HttpAnswer | None) -> ProbeOutcome:
    """What a user of ``probe``'s system would see, given the DNS and HTTP answers."""
    address = dns.addresses[0] if dns.addresses else None
    if dns.problem or answer is None:
        return ProbeOutcome(probe.system, probe.url, None, None, None, "no-dns",
                            f"{dns.problem or 'no DNS answer'}: {NO_INTERNET}")
    if answer.problem or answer.status is None:
        return ProbeOutcome(probe.system, probe.url, address, None, None, "no-answer",
                            f"{answer.problem}: {NO_INTERNET}")
    status, location = answer.status, answer.location
    if probe.succeeds(status, answer.body):
        verdict = "the phone would consider itself online (no sign-in sheet)"
        return ProbeOutcome(probe.system, probe.url, address, status, None, "online", verdict)
    if 300 <= status < 400:
        verdict = f"the sign-in sheet would open (redirected to {location or '?'})"
    else:
        verdict = (f"the sign-in sheet would open, showing the page {address} answered "
                   f"(HTTP {status}) instead of the expected answer")
    return ProbeOutcome(probe.system, probe.url, address, status, location, "sign-in", verdict)


def judge_api(url: str | None, answer: HttpAnswer | None) -> ApiOutcome:
    """What an RFC 8908 phone makes of the API at ``url`` (option 114)."""
    if not url:
        return ApiOutcome(None, None, None, None, "no option 114 in the lease: phones rely "
                          "on their own checks below")
    if answer is None or answer.problem:
        problem = answer.problem if answer else "its host name did not resolve"
        return ApiOutcome(url, None, None, None, f"could not be fetched: {problem}")
    try:
        data = json.loads(answer.body)
        captive = data["captive"]
    except (ValueError, KeyError, TypeError):
        return ApiOutcome(url, None, None, None, f"answered HTTP {answer.status} without "
                          "the RFC 8908 JSON ('captive' missing): phones ignore it")
    portal_url = data.get("user-portal-url")
    remaining = data.get("seconds-remaining")
    if captive:
        verdict = f"held back: phones that read it would open {portal_url or '(no URL given)'}"
    else:
        verdict = "let through" + (f" for {remaining // 60} more minutes"
                                   if isinstance(remaining, int) else "")
    notes = []
    if answer.headers.get("content-type", "").split(";")[0] != "application/captive+json":
        notes.append("its Content-Type is not application/captive+json (RFC 8908)")
    if urlsplit(url).scheme != "https":
        notes.append("Android ignores an http:// API and relies on its own check")
    if notes:
        verdict += "; " + "; ".join(notes)
    return ApiOutcome(url, bool(captive), portal_url,
                      remaining if isinstance(remaining, int) else None, verdict)


def _fetch_url(pin: Pin, dns_server: str | None, url: str, accept: str) -> HttpAnswer | None:
    """GET ``url`` like a browser pinned to the interface (None: the host did not resolve)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        if dns_server is None:
            return None
        dns = resolve(pin, dns_server, host)
        if not dns.addresses:
            return None
        address = dns.addresses[0]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return fetch(pin, address, host, path, port=parts.port, https=parts.scheme == "https",
                 accept=accept)


def visit(iface: str, *, expected: str | None = None, timeout: float = 3.0) -> PortalReport:
    """Take a lease on ``iface`` and play every captive check (see the module docstring)."""
    lease = obtain_lease(iface, timeout=max(timeout, DHCP_TIMEOUT), expected=expected)
    offer = lease.offer
    with borrowed_address(iface, lease.address, offer.subnet, lease.router) as borrowed:
        pin = Pin(iface, str(lease.address), timeout)
        dns_server = offer.dns[0] if offer.dns else None
        api_answer = (_fetch_url(pin, dns_server, offer.captive_url, "application/captive+json")
                      if offer.captive_url else None)
        api = judge_api(offer.captive_url, api_answer)
        outcomes = []
        for probe in PROBES:
            if dns_server is None:
                dns = DnsAnswer(probe.host, problem="the lease names no DNS server")
            else:
                dns = resolve(pin, dns_server, probe.host)
            answer = (fetch(pin, dns.addresses[0], probe.host, probe.path,
                            user_agent=probe.user_agent) if dns.addresses else None)
            outcomes.append(judge(probe, dns, answer))
    return PortalReport(iface, lease, borrowed, api, tuple(outcomes))


def format_report(report: PortalReport) -> str:
    """The plain-text answer of ``meshhub diag portal``."""
    offer = report.lease.offer
    lines = [f"Lease on {report.iface}: {offer.offered}/{offer.subnet.prefixlen} from "
             f"{offer.server_id} (MAC {offer.server_mac}), router "
             f"{', '.join(offer.router) or 'none'}, DNS {', '.join(offer.dns) or 'none'}, "
             + (f"{offer.lease_seconds}s" if offer.lease_seconds is not None else "no lease time")]
    if report.lease.offers_heard > 1:
        lines.append(f"  {report.lease.offers_heard} DHCP servers offered: run "
                     f"'meshhub diag dhcp {report.iface}' to find the rogue one.")
    if report.borrowed:
        lines.append("  (the address was borrowed on the interface for the checks and removed "
                     "again)")
    lines.append(f"Captive API (option 114): {report.api.url or 'absent'}")
    lines.append(f"  {report.api.verdict}")
    lines.append("What each system would show:")
    for probe in report.probes:
        lines.append(f"- {probe.system}: {probe.verdict}")
        got = f"HTTP {probe.status}" if probe.status is not None else "nothing"
        lines.append(f"    {probe.url} -> {probe.address or 'no address'}: {got}")
    lines.append(f"In short: {report.summary}")
    return "\n".join(lines)
