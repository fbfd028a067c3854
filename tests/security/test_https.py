"""Replay (issue 17, item 5): organisers' passwords and cookies in clear on open Wi-Fi.

Everything went over plain HTTP, so anyone listening in the air read organisers'
passwords and session cookies. With the node's own certificate (``meshhub-portal
tls-cert``), the real nginx sends organisers' and technicians' pages to HTTPS, the
sign-in form travels encrypted, and the session cookie set there is ``Secure``: a
browser never sends it over HTTP. Residents' pages stay on plain HTTP.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import ssl
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.net import address_plan
from node.tls import ensure_certificate
from portal import db
from portal.nginx import render_site, standalone_conf
from portal.server import ServerThread
from tests.conftest import require_tool
from tests.portal.conftest import ORGANISER, ORGANISER_PASSWORD, Seeder, make_app, write_node_toml
from tests.portal.test_nginx import NGINX, held_listener, wait_for_nginx

pytestmark = pytest.mark.tools


@dataclass
class TlsFront:
    """nginx with the node's certificate in front of the portal."""

    http_port: int
    https_port: int
    fingerprint: str

    def http(self, path: str) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        return _exchange(conn, "GET", path, None, {})

    def https(self, path: str, method: str = "GET", body: str | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """A request over TLS that trusts the certificate only by its pinned fingerprint."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # self-signed: checked by fingerprint below
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=10,
                                           context=context)
        conn.connect()
        der = conn.sock.getpeercert(binary_form=True)
        seen = hashlib.sha256(der).hexdigest().upper()
        assert ":".join(seen[i:i + 2] for i in range(0, 64, 2)) == self.fingerprint
        return _exchange(conn, method, path, body, headers or {})


def _exchange(conn: http.client.HTTPConnection, method: str, path: str, body: str | None,
              headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        found = {k.lower(): v for k, v in response.getheaders()}
        found["set-cookie"] = "\n".join(response.headers.get_all("Set-Cookie") or [])
        return response.status, found, response.read()
    finally:
        conn.close()


@pytest.fixture
def tls_front(tmp_path: Path) -> Iterator[TlsFront]:
    require_tool(NGINX, "openssl")
    config = write_node_toml(tmp_path, "[portal]\nbehind_proxy = true\n")
    app = make_app(config)
    Seeder(app).hub  # noqa: B018 - creates the organiser's account
    made = ensure_certificate(config)
    portal = ServerThread(app, config, threads=4)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    # nginx inherits both listening sockets (its NGINX variable): no port race.
    plain, secure = held_listener(), held_listener()
    http_port, https_port = plain.getsockname()[1], secure.getsockname()[1]
    site = render_site(config, library_dir=db.services(app).hub.blobs.root,
                       listen=f"127.0.0.1:{http_port}", cache_dir=prefix / "cache",
                       portal_address=f"127.0.0.1:{portal.port}",
                       tls=(made.cert, made.key), tls_listen=f"127.0.0.1:{https_port}")
    conf = prefix / "nginx.conf"
    conf.write_text(standalone_conf(site, prefix, run_as_root=os.geteuid() == 0))
    log = prefix / "error.log"
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(log),
                                "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               pass_fds=(plain.fileno(), secure.fileno()),
                               env={**os.environ,
                                    "NGINX": f"{plain.fileno()};{secure.fileno()};"})
    plain.close()
    secure.close()
    try:
        wait_for_nginx(http_port, process, log)
        yield TlsFront(http_port, https_port, made.fingerprint)
    finally:
        process.terminate()
        process.wait(timeout=10)
        portal.stop()
        db.close(app)


def test_the_certificate_is_made_once_and_its_fingerprint_is_what_openssl_says(
        tmp_path: Path) -> None:
    require_tool("openssl")
    config = write_node_toml(tmp_path)
    made = ensure_certificate(config)
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600
    out = subprocess.run(["openssl", "x509", "-in", str(made.cert), "-noout", "-fingerprint",
                          "-sha256", "-ext", "subjectAltName"], capture_output=True, text=True,
                         check=True).stdout
    assert f"Fingerprint={made.fingerprint}" in out
    assert "DNS:hub.mesh" in out and "DNS:elm-library.mesh" in out
    plan = address_plan(config)
    assert f"IP Address:{plan.portal_address}," in out
    assert f"IP Address:{plan.mesh_address}" in out
    again = ensure_certificate(config)
    assert again.fingerprint == made.fingerprint, "made once, then kept"


def test_organisers_pages_go_over_https_with_a_secure_cookie(tls_front: TlsFront) -> None:
    status, headers, _ = tls_front.http("/organisers/sign-in?next=/organisers/")
    assert status == 301
    assert headers["location"] == (f"https://127.0.0.1:{tls_front.https_port}"
                                   "/organisers/sign-in?next=/organisers/")
    assert tls_front.http("/technicians/")[0] == 301
    status, _, body = tls_front.http("/")
    assert status == 200 and b"<html" in body, "residents' pages stay on plain HTTP"

    status, headers, body = tls_front.https("/organisers/sign-in")
    assert status == 200
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)
    cookie = headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    form = (f"csrf_token={token.decode()}&name={ORGANISER}&"
            f"password={ORGANISER_PASSWORD.replace(' ', '+')}")
    status, headers, _ = tls_front.https(
        "/organisers/sign-in", method="POST", body=form,
        headers={"Cookie": cookie.split(";")[0],
                 "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 302, "signed in over HTTPS"
    cookies = {line.split("=", 1)[0]: line for line in headers["set-cookie"].splitlines()}
    session = cookies["meshhub_session"]  # beside it, meshhub_private (nginx: no page files)
    assert all("; Secure" in line for line in cookies.values()), cookies
    status, _, body = tls_front.https("/organisers/", headers={"Cookie": session.split(";")[0]})
    assert status == 200 and b"Sign out" in body
