"""zeroconf on a busy machine: a registration that times out is tried again, and a
zeroconf that cannot start does not stop the agent's mesh service."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from zeroconf import EventLoopBlocked

from node.mesh import discovery as discovery_module
from node.mesh.discovery import REGISTER_ATTEMPTS, Announcement, Discovery

ANNOUNCEMENT = Announcement("n1", "10.42.0.1", 9180, "ab" * 32, "abcd", "0.1.0")
SERVICE = SimpleNamespace(name="n1._meshhub._tcp.local.")  # what register_service is given


class SlowZeroconf:
    """Answers ``register_service`` with ``EventLoopBlocked`` the first ``late`` times."""

    def __init__(self, late: int) -> None:
        self.late = late
        self.registered: list[Any] = []

    def register_service(self, info: Any, allow_name_change: bool = False) -> None:
        if self.late:
            self.late -= 1
            raise EventLoopBlocked
        self.registered.append(info)


def test_a_registration_that_timed_out_is_tried_again() -> None:
    found = Discovery(ANNOUNCEMENT, ["lo"])
    found._zc = SlowZeroconf(late=REGISTER_ATTEMPTS - 1)
    found._register(SERVICE)
    assert found._zc.registered == [SERVICE]


def test_a_loop_that_never_answers_gives_up_with_the_error() -> None:
    found = Discovery(ANNOUNCEMENT, ["lo"])
    found._zc = SlowZeroconf(late=REGISTER_ATTEMPTS)
    with pytest.raises(EventLoopBlocked):
        found._register(SERVICE)


def test_the_mesh_service_runs_on_when_zeroconf_cannot_start(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from node.config import parse_config
    from node.mesh.service import MeshService

    def blocked(self: Discovery) -> None:
        raise EventLoopBlocked

    monkeypatch.setattr(discovery_module.Discovery, "start", blocked)
    cfg = parse_config(f'[node]\ndata_dir = "{tmp_path}"\n[mesh]\naddress = "10.42.0.7"\n'
                       'routing = false\ndiscovery = true\n')
    service = MeshService(cfg)
    service.start()  # logs, does not raise
    try:
        assert service.discovery is None
        assert "zeroconf could not start" in caplog.text
    finally:
        service.stop()
