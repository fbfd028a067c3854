"""Replay (issue 17, item 8): library files served by nginx lost the security headers.

nginx serves library files itself after the portal's ``X-Accel-Redirect``; it
keeps only a few of the portal's headers, so ``/library/<id>/view`` and
``/download`` went out without ``Content-Security-Policy`` (and with it
``frame-ancestors``) and ``Referrer-Policy``: another site could frame them.
"""

from __future__ import annotations

import pytest

from portal.security import CONTENT_SECURITY_POLICY, EMBEDDABLE_POLICY
from tests.portal.test_nginx import Front

pytestmark = pytest.mark.tools


@pytest.mark.parametrize(("kind", "policy"), [("download", CONTENT_SECURITY_POLICY),
                                              ("view", EMBEDDABLE_POLICY)])
def test_library_files_through_nginx_keep_the_portals_security_headers(
        front: Front, kind: str, policy: str) -> None:
    for extra in ({}, {"Range": "bytes=0-99"}):
        status, headers, body = front.request(f"/library/{front.library_id}/{kind}", extra)
        assert status in (200, 206) and body, "nginx sent the file itself"
        assert body == front.library_bytes[:len(body)]
        assert headers.get("content-security-policy") == policy
        assert headers.get("referrer-policy") == "no-referrer"
        assert headers.get("x-content-type-options") == "nosniff"


def test_static_files_through_nginx_carry_the_security_headers(front: Front) -> None:
    status, headers, _body = front.request("/static/site.css")
    assert status == 200
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", "")
    assert headers.get("referrer-policy") == "no-referrer"
    assert headers.get("x-content-type-options") == "nosniff"
