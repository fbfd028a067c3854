"""The production front: a real nginx with the node's site in front of the real portal.

nginx runs from a temporary prefix (its own pid, logs and temp folders) with
the rendered ``images/nginx/meshhub.conf``; the portal is served by waitress
in a thread, exactly as ``meshhub-portal serve`` serves it.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import socket
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask

from portal import db
from portal.auth import PRIVATE_COOKIE
from portal.nginx import MAIN_SETTINGS, render_site, standalone_conf
from portal.sample.files import make_wav
from portal.server import ServerThread
from tests.conftest import require_tool
from tests.portal.conftest import ORGANISER, ORGANISER_PASSWORD, Seeder, make_app, write_node_toml

NGINX = "/usr/sbin/nginx"
CSS = b"body { font-family: sans-serif; color: #222; }\n"


@dataclass
class Front:
    """nginx on ``port`` in front of the portal ``app``."""

    port: int
    app: Flask
    seeder: Seeder
    library_bytes: bytes
    library_id: str

    def request(self, path: str, headers: dict[str, str] | None = None,
                method: str = "GET", body: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request through nginx: (status, lower-cased headers, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return (response.status, {k.lower(): v for k, v in response.getheaders()},
                    response.read())
        finally:
            conn.close()


def held_listener() -> socket.socket:
    """A listening loopback socket on a port of its own, to hand to nginx."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def wait_for_nginx(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until nginx answers on ``port`` (its socket queues connections from the start)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}:\n"
                        f"{log.read_text() if log.exists() else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("HEAD", "/static/site.css")
                conn.getresponse().read()
            finally:
                conn.close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not answer on {port}:\n{log.read_text() if log.exists() else ''}")


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    """The portal (waitress) behind a real nginx with the node's site configuration."""
    require_tool(NGINX)
    config = write_node_toml(tmp_path, "[portal]\nbehind_proxy = true\ncache_seconds = 30\n")
    app = make_app(config)
    static = tmp_path / "static"
    static.mkdir()
    (static / "site.css").write_bytes(CSS)
    app.static_folder = str(static)
    seeder = Seeder(app)
    seeder.listing(title="Blue bicycle for a child")
    seeder.notice(title="Water off on Tuesday", urgent=True)
    audio = make_wav(4.0, notes=(440.0, 660.0))
    with app.app_context():
        item = seeder.hub.add_library_file(ORGANISER, io.BytesIO(audio),
                                           filename="tone.wav", title="Test tone")
    library_dir = db.services(app).hub.blobs.root
    portal = ServerThread(app, config, threads=4)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    listener = held_listener()  # nginx inherits it (its NGINX variable): no port race
    port = listener.getsockname()[1]
    site = render_site(config, library_dir=library_dir, listen=f"127.0.0.1:{port}",
                       cache_dir=prefix / "cache", static_dir=static,
                       portal_address=f"127.0.0.1:{portal.port}")
    conf = prefix / "nginx.conf"
    conf.write_text(standalone_conf(site, prefix, run_as_root=os.geteuid() == 0))
    log = prefix / "error.log"
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(log),
                                "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, pass_fds=(listener.fileno(),),
                               env={**os.environ, "NGINX": f"{listener.fileno()};"})
    listener.close()  # nginx holds it now
    try:
        wait_for_nginx(port, process, log)
        yield Front(port, app, seeder, audio, item.id)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        portal.stop()
        db.close(app)


def test_the_rendered_site_passes_nginx_t(tmp_path: Path) -> None:
    """nginx itself accepts the configuration a node would install."""
    require_tool(NGINX)
    config = write_node_toml(tmp_path)
    site = render_site(config, library_dir=tmp_path / "library", listen="127.0.0.1:1",
                       cache_dir=tmp_path / "cache")
    conf = tmp_path / "nginx.conf"
    conf.write_text(standalone_conf(site, tmp_path, run_as_root=os.geteuid() == 0))
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf),
                             "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "access_log off;" in site
    assert "client_max_body_size 201m;" in site  # portal.upload_max_mb (200) + the form


def test_the_main_settings_pass_nginx_t_inside_debians_nginx_conf(tmp_path: Path) -> None:
    """The node's main-context file (pcre_jit, the workers' file limit), where Debian's own
    nginx.conf includes it (``modules-enabled/*.conf``), with the site in sites-enabled."""
    require_tool(NGINX)
    debian = Path("/etc/nginx/nginx.conf")
    if not debian.exists():
        pytest.skip("no Debian nginx.conf here")
    text = debian.read_text(encoding="utf-8")
    assert "include /etc/nginx/modules-enabled/*.conf;" in text  # at the top: main context
    for folder in ("modules-enabled", "sites-enabled", "conf.d"):
        (tmp_path / folder).mkdir()
    (tmp_path / "modules-enabled" / MAIN_SETTINGS.name).write_text(MAIN_SETTINGS.read_text())
    config = write_node_toml(tmp_path)
    (tmp_path / "sites-enabled" / "meshhub").write_text(render_site(
        config, library_dir=tmp_path / "library", listen="127.0.0.1:1",
        cache_dir=tmp_path / "cache"))
    text = text.replace("/etc/nginx/modules-enabled/", f"{tmp_path}/modules-enabled/")
    text = text.replace("/etc/nginx/sites-enabled/", f"{tmp_path}/sites-enabled/")
    text = text.replace("/etc/nginx/conf.d/", f"{tmp_path}/conf.d/")
    text = re.sub(r"^\s*(pid|error_log|access_log)\s[^;]*;", "", text, flags=re.M)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n{text}")
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf),
                             "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "pcre_jit on;" in MAIN_SETTINGS.read_text()


def test_pages_come_through_and_anonymous_ones_are_micro_cached(front: Front) -> None:
    status, headers, body = front.request("/")
    assert status == 200
    assert b"Blue bicycle for a child" in body
    assert headers["x-cache-status"] == "MISS"
    assert "s-maxage=30" in headers["cache-control"]
    status, headers, again = front.request("/")
    assert (status, headers["x-cache-status"]) == (200, "HIT")
    assert again == body


def all_headers(front: Front, path: str, headers: dict[str, str], name: str) -> str:
    """Every ``name`` header of the answer, joined (nginx may send Vary twice)."""
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return ", ".join(v for k, v in response.getheaders() if k.lower() == name)
    finally:
        conn.close()


def test_text_is_gzipped_and_files_are_not(front: Front, tmp_path: Path) -> None:
    static = tmp_path / "static"
    (static / "big.css").write_text(".card{margin:0}\n" * 200)
    (static / "map.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg">'
                                    + '<circle r="1"/>' * 200 + "</svg>")
    (static / "data.json").write_text('{"nodes": [' + ", ".join(['"n"'] * 300) + "]}")
    gzip = {"Accept-Encoding": "gzip"}
    for path in ("/", "/static/big.css", "/static/map.svg", "/static/data.json"):
        status, headers, body = front.request(path, headers=gzip)
        assert status == 200, path
        assert headers.get("content-encoding") == "gzip", path
        assert "Accept-Encoding" in all_headers(front, path, gzip, "vary"), path
        assert zlib.decompress(body, 16 + zlib.MAX_WBITS), path
    _, plain, html = front.request("/")
    assert "content-encoding" not in plain and b"Blue bicycle" in html, "only when asked"
    _, headers, _ = front.request(f"/library/{front.library_id}/download", headers=gzip)
    assert "content-encoding" not in headers, "library files pass as they are"


def test_the_language_cookie_is_part_of_the_cache_key(front: Front) -> None:
    front.request("/")
    _, headers, _ = front.request("/", headers={"Cookie": "lang=ar"})
    assert headers["x-cache-status"] == "MISS"


def test_conditional_request_gets_304(front: Front) -> None:
    _, headers, _ = front.request("/notices/")
    etag = headers["etag"]
    status, headers, body = front.request("/notices/", headers={"If-None-Match": etag})
    assert status == 304
    assert body == b""


def test_static_files_are_served_by_nginx_with_long_caching(front: Front) -> None:
    with front.app.test_request_context():
        from flask import url_for

        url = url_for("static", filename="site.css")
    assert re.search(r"\?v=[0-9a-f]{12}$", url), url
    status, headers, body = front.request(url)
    assert (status, body) == (200, CSS)
    assert "max-age=31536000" in headers["cache-control"]
    assert "x-cache-status" not in headers  # nginx's file, not a proxied page
    status, _, _ = front.request(url, headers={"If-None-Match": headers["etag"]})
    assert status == 304
    _, headers, _ = front.request("/static/site.css")
    assert "max-age=3600" in headers["cache-control"]  # unversioned: short


def test_library_download_is_sent_by_nginx_with_range(front: Front) -> None:
    path = f"/library/{front.library_id}/download"
    status, headers, body = front.request(path)
    assert status == 200
    assert body == front.library_bytes
    assert headers["content-type"].startswith("audio/")
    assert "attachment" in headers["content-disposition"]
    assert "x-accel-redirect" not in headers
    status, headers, body = front.request(path, headers={"Range": "bytes=1000-1999"})
    assert status == 206
    assert body == front.library_bytes[1000:2000]
    assert headers["content-range"] == f"bytes 1000-1999/{len(front.library_bytes)}"


def test_the_internal_library_location_is_not_reachable_from_outside(front: Front) -> None:
    sha = db.services(front.app).store.library_item(front.library_id).sha256
    status, _, _ = front.request(f"/_meshhub_library/{sha[:2]}/{sha}")
    assert status == 404


def test_signed_in_organisers_bypass_the_cache(front: Front) -> None:
    front.request("/")  # fill the cache
    status, headers, body = front.request("/organisers/sign-in")
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)
    cookie = headers["set-cookie"].split(";")[0]
    form = (f"csrf_token={token.decode()}&name={ORGANISER}&"
            f"password={ORGANISER_PASSWORD.replace(' ', '+')}")
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    conn.request("POST", "/organisers/sign-in", body=form,
                 headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 302, "sign-in through nginx failed"
    kept = "; ".join(c.split(";")[0] for c in response.headers.get_all("Set-Cookie") or [])
    assert "meshhub_session=" in kept and f"{PRIVATE_COOKIE}=1" in kept  # as a browser keeps
    status, headers, _ = front.request("/", headers={"Cookie": kept})
    assert status == 200
    assert headers["x-cache-status"] == "BYPASS"
    assert headers["cache-control"] == "private, no-store"


def test_a_residents_form_session_shares_the_cache_but_never_fills_it(front: Front) -> None:
    """A resident's CSRF session gets everyone's cached page; their own answers are not kept."""
    _, headers, _ = front.request("/welcome")
    session = headers["set-cookie"].split(";")[0]
    assert session.startswith("meshhub_session=")
    _, headers, _ = front.request("/search?q=bicycle", headers={"Cookie": session})
    assert headers["x-cache-status"] == "MISS"
    assert headers["cache-control"] == "private, no-store"
    _, headers, anonymous = front.request("/search?q=bicycle")
    assert headers["x-cache-status"] == "MISS", "a session holder's answer was kept"
    _, headers, shared = front.request("/search?q=bicycle", headers={"Cookie": session})
    assert headers["x-cache-status"] == "HIT" and shared == anonymous


def test_browsers_headers_naming_the_same_language_share_one_cached_page(front: Front) -> None:
    front.request("/search?q=bicycle", headers={"Accept-Language": "en-GB,en;q=0.9"})
    for header in ("en-US,en;q=0.9", "fr-FR,fr;q=0.9,en;q=0.8", "pl"):
        _, headers, _ = front.request("/search?q=bicycle", headers={"Accept-Language": header})
        assert headers["x-cache-status"] == "HIT", header
    _, headers, _ = front.request("/search?q=bicycle", headers={"Accept-Language": "es"})
    assert headers["x-cache-status"] == "MISS"
