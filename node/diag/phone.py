"""A phone's two tools, pinned to one interface: a DNS lookup and one HTTP request.

Every socket is bound to the interface (``SO_BINDTODEVICE``) and to the leased
address, so a laptop's other connections (its Ethernet, its VPN) are never used:
what comes back is what a phone on that Wi-Fi would get.
"""

from __future__ import annotations

import http.client
import secrets
import socket
import ssl
from dataclasses import field

from scapy.layers.dns import DNS, DNSQR

from node.diag.link import bind_to_interface
from node.frozen import frozen

#: How much of a page is read (a probe's answer is tiny; a portal page is small).
MAX_BODY = 64 * 1024
RCODES = {1: "a malformed query", 2: "a server failure", 3: "no such name (NXDOMAIN)",
          4: "not implemented", 5: "refused"}


@frozen
class DnsAnswer:
    """The A records for a name, or why there are none (``problem``)."""

    name: str
    addresses: tuple[str, ...] = ()
    problem: str | None = None


@frozen
class HttpAnswer:
    """One HTTP response (redirects are not followed), or why none came (``problem``)."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    problem: str | None = None

    @property
    def location(self) -> str | None:
        """Where a redirect points."""
        return self.headers.get("location")


@frozen
class Pin:
    """Where a phone's traffic leaves: the interface and the leased address."""

    iface: str
    source: str
    timeout: float = 3.0


def resolve(pin: Pin, server: str, name: str) -> DnsAnswer:
    """Ask ``server`` (UDP 53, through ``pin``) for the A records of ``name``."""
    query_id = secrets.randbits(16)
    query = DNS(id=query_id, rd=1, qd=DNSQR(qname=name, qtype="A"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        bind_to_interface(sock, pin.iface, pin.source)
        sock.settimeout(pin.timeout)
        try:
            sock.sendto(bytes(query), (server, 53))
            while True:
                data, peer = sock.recvfrom(4096)
                reply = DNS(data)
                if peer[0] == server and reply.id == query_id:
                    break
        except TimeoutError:
            return DnsAnswer(name, problem=f"no DNS answer from {server} "
                                           f"within {pin.timeout:g}s")
        except OSError as exc:
            return DnsAnswer(name, problem=f"DNS server {server} unreachable ({exc.strerror})")
    if reply.rcode:
        return DnsAnswer(name, problem=f"DNS server {server} answered "
                                       f"{RCODES.get(reply.rcode, f'error {reply.rcode}')}")
    addresses = tuple(str(rr.rdata) for rr in (reply.an or []) if rr.type == 1)
    if not addresses:
        return DnsAnswer(name, problem=f"DNS server {server} has no address for {name}")
    return DnsAnswer(name, addresses)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, pin: Pin, address: str, port: int) -> None:
        super().__init__(address, port, timeout=pin.timeout)
        self.pin = pin

    def connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            bind_to_interface(sock, self.pin.iface, self.pin.source)
            sock.settimeout(self.timeout)
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _PinnedHTTPS(_PinnedHTTP):
    def __init__(self, pin: Pin, address: str, port: int, server_name: str) -> None:
        super().__init__(pin, address, port)
        self.server_name = server_name

    def connect(self) -> None:
        super().connect()
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(self.sock, server_hostname=self.server_name)


def fetch(pin: Pin, address: str, host: str, path: str, *, port: int | None = None,
          https: bool = False, user_agent: str = "Mozilla/5.0",
          accept: str = "*/*") -> HttpAnswer:
    """GET ``path`` from ``address`` with ``Host: host``, through ``pin``, no redirects."""
    port = port or (443 if https else 80)
    conn: _PinnedHTTP = (_PinnedHTTPS(pin, address, port, host) if https
                         else _PinnedHTTP(pin, address, port))
    try:
        default_port = port == (443 if https else 80)
        conn.request("GET", path, headers={
            "Host": host if default_port else f"{host}:{port}",
            "User-Agent": user_agent, "Accept": accept, "Connection": "close"})
        response = conn.getresponse()
        body = response.read(MAX_BODY).decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in response.getheaders()}
        return HttpAnswer(response.status, headers, body)
    except ssl.SSLError as exc:
        return HttpAnswer(problem=f"TLS failed with {host} ({exc.reason or exc})")
    except TimeoutError:
        return HttpAnswer(problem=f"no answer from {address} port {port} "
                                  f"within {pin.timeout:g}s")
    except ConnectionRefusedError:
        return HttpAnswer(problem=f"{address} refused the connection on port {port}")
    except (OSError, http.client.HTTPException) as exc:
        return HttpAnswer(problem=f"{address} port {port}: {exc}")
    finally:
        conn.close()
