"""Fixtures for the namespace lab: a :class:`Lab` that always cleans up after itself."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.netlab import Lab, lab_tag
from node.lab import MeshLab, lab_namespaces
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


@contextmanager
def phone_mesh(name: str, nodes: int = 3, topology: str = "line", *, wait: float = 120,
               **options: Any) -> Iterator[MeshLab]:
    """``meshhub lab up --phones``: ``nodes`` real nodes (agents, gates, babeld, dnsmasq,
    portals as ``nobody``), each with a phone namespace, names unique to this process.

    Its files are in a temporary folder of its own (pytest's ``tmp_path`` is private to
    root; the portals run as nobody), removed at the end with every namespace, even
    when the test fails. ``options`` go to :meth:`MeshLab.up`.
    """
    require_root()
    require_tool("ip", "babeld", "dnsmasq", "nft", "busybox", "curl", "setpriv")
    with temporary_lab(name, nodes, topology, phones=True, hello_interval=1.0, wait=wait,
                       **options) as mesh:
        yield mesh


@contextmanager
def temporary_lab(name: str, nodes: int, topology: str, **options: Any) -> Iterator[MeshLab]:
    """:meth:`MeshLab.up` in a temporary folder of its own (``meshhub-NAME-*``, readable
    by the portals' user), names unique to this process; the lab, its folder and every
    namespace are removed at the end, even when the test fails (and the test fails if a
    namespace is left)."""
    root = Path(tempfile.mkdtemp(prefix=f"meshhub-{name}-"))
    root.chmod(0o755)
    lab_id = lab_tag()
    mesh = None
    try:
        mesh = MeshLab.up(nodes, topology, state_dir=root / "lab", lab_id=lab_id, **options)
        yield mesh
    finally:
        if mesh is not None:
            mesh.down()
        shutil.rmtree(root, ignore_errors=True)
        assert not [ns for ns in lab_namespaces() if ns.startswith(f"mhl-{lab_id}-")]


@pytest.fixture
def phone_lab(request: pytest.FixtureRequest) -> Iterator[tuple[MeshLab, Lab]]:
    """A 3-node line with phones (:func:`phone_mesh`, named after the test's module) and a
    :class:`Lab` for the test's own namespaces and processes."""
    with phone_mesh(request.module.__name__.rsplit(".", 1)[-1]) as mesh:
        net = Lab()
        try:
            yield mesh, net
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
