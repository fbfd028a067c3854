"""Fixtures the attack replays share with the feature tests they attack."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.lab.conftest import lab  # noqa: F401 - namespaces that always clean up
from tests.portal.test_nginx import front  # noqa: F401 - the real nginx in front of the portal


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser without JavaScript, talking to the module's ``app``."""
    return app.test_client()
