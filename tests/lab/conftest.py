"""Fixtures for the namespace lab: a :class:`Lab` that always cleans up after itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.netlab import Lab
from tests.conftest import require_root, require_tool


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh lab (root and ``ip`` required); every namespace and process is removed
    at the end, even when the test fails."""
    require_root()
    require_tool("ip")
    net = Lab()
    try:
        yield net
    finally:
        net.close()
