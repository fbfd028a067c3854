"""Compression stays off for pages sent over HTTPS (BREACH): organisers' pages carry
CSRF tokens next to what a visitor typed. Residents' pages on plain HTTP are gzipped
(issue 18); the real nginx with the node's certificate shows both."""

from __future__ import annotations

import http.client
import zlib

import pytest

from tests.security.test_https import TlsFront, tls_front  # noqa: F401 (the fixture)

pytestmark = pytest.mark.tools
GZIP = {"Accept-Encoding": "gzip"}


def test_pages_over_https_are_not_compressed_but_residents_pages_are(
        tls_front: TlsFront) -> None:  # noqa: F811
    status, headers, body = tls_front.https("/organisers/sign-in", headers=GZIP)
    assert status == 200 and "content-encoding" not in headers
    assert b'name="csrf_token"' in body
    conn = http.client.HTTPConnection("127.0.0.1", tls_front.http_port, timeout=10)
    try:
        conn.request("GET", "/", headers=GZIP)
        response = conn.getresponse()
        assert response.getheader("Content-Encoding") == "gzip"
        assert b"<html" in zlib.decompress(response.read(), 16 + zlib.MAX_WBITS)
    finally:
        conn.close()
