"""Fixtures for the namespace lab: a :class:`Lab` that always cleans up after itself."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


def radios_here() -> bool:
    """Whether this machine runs the radio lab itself: its kernel has mac80211_hwsim, or
    ``MESHHUB_RADIO_TESTS=1`` says it must."""
    from node.lab.radio import hwsim_available

    return os.environ.get("MESHHUB_RADIO_TESTS") == "1" or hwsim_available()


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """One of two ways runs the radio lab's tests: ``test_radio_lab.py`` directly where
    the kernel has mac80211_hwsim, else ``test_radio_in_vm.py``, which runs that same
    module inside a Debian virtual machine and reports each of its tests here. (A file
    named on the command line is collected anyway.)"""
    if collection_path.name == "test_radio_lab.py" and not radios_here():
        return True
    if collection_path.name == "test_radio_in_vm.py" and radios_here():
        return True
    return None
