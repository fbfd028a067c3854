"""dnsmasq's lease events reach the gate: the hook, the protocol, the manager's nft sets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from node.gate import GateError
from node.gate.leases import event_request, main, read_lease_file
from node.gate.protocol import LeaseStatus, Request, parse_request
from node.gate.server import GateServer
from tests.conftest import require_root
from tests.node.test_gate import MAC, PHONE, FakeShell, manager


def test_bind_puts_the_lease_in_both_sets_in_one_transaction() -> None:
    shell = FakeShell()
    status = manager(shell).bind(PHONE, MAC.upper(), 3600)
    assert status == LeaseStatus(PHONE, MAC, True, 3660)  # a minute's grace
    argv, script = shell.calls[-1]
    assert argv == ["nft", "-f", "-"] and len(shell.calls) == 1
    element, key = f"{{ {PHONE} . {MAC} timeout 3660s }}", f"{{ {PHONE} . {MAC} }}"
    expected = "".join(f"add element {where} {element}\ndelete element {where} {key}\n"
                       f"add element {where} {element}\n"
                       for where in ("inet meshhub leased", "arp meshhub_arp leased"))
    assert script == expected


def test_unbind_removes_it_from_both_and_cannot_fail_on_a_missing_one() -> None:
    shell = FakeShell()
    manager(shell).unbind(PHONE, MAC)
    key = f"{{ {PHONE} . {MAC} }}"
    assert shell.calls[-1][1] == (f"add element inet meshhub leased {key}\n"
                                  f"delete element inet meshhub leased {key}\n"
                                  f"add element arp meshhub_arp leased {key}\n"
                                  f"delete element arp meshhub_arp leased {key}\n")


def test_only_client_addresses_can_be_bound() -> None:
    with pytest.raises(GateError) as caught:
        manager(FakeShell()).bind("10.42.0.1", MAC, 60)
    assert caught.value.code == "not-a-client"


def test_the_lease_file_is_read_without_expired_or_ipv6_lines(tmp_path: Path) -> None:
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text(f"1000 {MAC} {PHONE} phone 01:{MAC}\n"
                      "500 02:00:00:00:00:51 10.64.7.51 * *\n"
                      "0 02:00:00:00:00:52 10.64.7.52 * *\n"
                      "duid 00:01:00:01\n1200 1234 fe80::1 * *\ngarbage\n")
    assert read_lease_file(leases, now=600) == [(PHONE, MAC, 400),
                                                ("10.64.7.52", "02:00:00:00:00:52", 86400)]
    assert read_lease_file(tmp_path / "none", now=0) == []


@pytest.mark.parametrize(("action", "env", "expected"), [
    ("add", {"DNSMASQ_TIME_REMAINING": "3600"},
     {"op": "lease", "ip": PHONE, "mac": MAC, "seconds": 3600}),
    ("old", {"DNSMASQ_TIME_REMAINING": "120"},
     {"op": "lease", "ip": PHONE, "mac": MAC, "seconds": 120}),
    ("del", {}, {"op": "release", "ip": PHONE, "mac": MAC}),
    ("init", {}, None), ("tftp", {}, None), ("arp-add", {}, None),
])
def test_dnsmasq_events_become_gate_requests(action: str, env: dict[str, str],
                                             expected: dict | None) -> None:
    assert event_request(action, MAC, PHONE, env) == expected
    if expected is not None:
        assert parse_request(json.dumps(expected).encode()).op == expected["op"]


@pytest.mark.parametrize("line", [
    b'{"op":"lease","ip":"10.64.7.50","mac":"02:00:00:00:00:50"}',
    b'{"op":"lease","ip":"10.64.7.50","mac":"02:00:00:00:00:50","seconds":0}',
    b'{"op":"lease","ip":"10.64.7.50","mac":"02:00:00:00:00:50","seconds":true}',
    b'{"op":"lease","ip":"10.64.7.50","mac":"02:00:00:00:00:5","seconds":60}',
    b'{"op":"lease","ip":"10.64.7.50","mac":"02-00-00-00-00-50","seconds":60}',
    b'{"op":"release","ip":"10.64.7.50"}',
    b'{"op":"allow","ip":"10.64.7.50","mac":"02:00:00:00:00:50"}',
])
def test_lease_requests_are_parsed_strictly(line: bytes) -> None:
    with pytest.raises(GateError) as caught:
        parse_request(line)
    assert caught.value.code == "bad-request"


def _handler(request: Request) -> LeaseStatus:
    assert request.mac is not None
    return LeaseStatus(request.ip, request.mac, request.op == "lease", request.seconds)


def test_the_hook_reports_to_the_socket_and_never_fails_dnsmasq(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> LeaseStatus:
        seen.append(request)
        return _handler(request)

    with GateServer(tmp_path / "gate.sock", handler):
        monkeypatch.setenv("DNSMASQ_TIME_REMAINING", "3600")
        assert main(["--socket", str(tmp_path / "gate.sock"), "add", MAC, PHONE, "phone"]) == 0
        assert main(["--socket", str(tmp_path / "gate.sock"), "del", MAC, PHONE]) == 0
    assert [(r.op, r.ip, r.mac, r.seconds) for r in seen] == [
        ("lease", PHONE, MAC, 3600), ("release", PHONE, MAC, None)]
    assert main(["--socket", str(tmp_path / "gone.sock"), "add", MAC, PHONE]) == 0
    assert "did not take add" in capsys.readouterr().err


def test_the_portals_user_cannot_report_leases() -> None:
    require_root()
    folder = Path(tempfile.mkdtemp(prefix="meshhub-gate-"))
    os.chmod(folder, 0o755)  # noqa: S103 - a throw-away test folder
    server = GateServer(folder / "gate.sock", _handler, allowed_uids={65534})
    server.start()
    try:
        os.chmod(folder / "gate.sock", 0o666)  # noqa: S103 - the uid check alone must hold
        request = json.dumps({"op": "lease", "ip": PHONE, "mac": MAC, "seconds": 60})
        code = ("import socket; s = socket.socket(socket.AF_UNIX); "
                f"s.connect({str(folder / 'gate.sock')!r}); "
                f"s.sendall({request!r}.encode() + b'\\n'); print(s.recv(4096).decode())")
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              sys.executable, "-I", "-c", code], capture_output=True, text=True,
                             timeout=20, check=True).stdout
        assert '"error":"forbidden"' in out and "report leases" in out
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
