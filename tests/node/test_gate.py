"""The gate's control: the manager's nft commands, the strict protocol, the mode switch."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from node.config import parse_config
from node.errors import ConfigError
from node.gate import GateError, GateManager, effective_mode, read_switch, write_switch
from node.gate.manager import parse_duration_ms
from node.gate.protocol import MAX_REQUEST_BYTES, parse_request

PHONE, MAC = "10.64.7.50", "02:00:00:00:00:50"
NEIGH = json.dumps([{"dst": PHONE, "dev": "ap0", "lladdr": MAC, "state": ["REACHABLE"]}])


class FakeShell:
    """Records every command and answers like ip/nft would.

    ``nft -f -`` scripts that add or delete elements of the allow set change what
    ``nft get element`` answers afterwards (unless ``element`` fixes the answer), so a
    real :class:`~node.gate.GateManager` or :class:`~node.gate.service.GateService`
    over it behaves as over nftables: allowed is allowed until deleted.
    """

    def __init__(self, neigh: str = NEIGH, element: str | None = None) -> None:
        self.neigh = neigh
        self.element = element
        self.calls: list[tuple[list[str], str | None]] = []
        #: Each set's elements, (ip, mac) -> timeout seconds; ``allowed`` is the allow set.
        self.sets: dict[str, dict[tuple[str, str], int]] = {"allowed": {}, "notice_read": {}}
        self.allowed = self.sets["allowed"]
        self.flushed: list[str] = []  #: sets emptied by ``flush set``, in order

    def __call__(self, argv: Sequence[str], stdin: str | None) -> tuple[int, str, str]:
        self.calls.append((list(argv), stdin))
        if argv[:2] == ["ip", "-j"]:
            return 0, self.neigh, ""
        if argv[:3] == ["nft", "get", "element"]:
            return self._get(argv[-2], argv[-1])
        if list(argv) == ["nft", "-f", "-"]:
            for name in FLUSH_LINE.findall(stdin or ""):
                self.flushed.append(name)
                self.sets.get(name, {}).clear()
            for op, name, ip, mac, seconds in ELEMENT_LINE.findall(stdin or ""):
                if op == "add":
                    self.sets[name][ip, mac] = int(seconds)
                else:
                    self.sets[name].pop((ip, mac), None)
        return 0, "", ""

    def _get(self, name: str, key: str) -> tuple[int, str, str]:
        if self.element is not None and name == "allowed":
            return 0, self.element, ""
        ip, _, mac = key.strip("{ }").partition(" . ")
        seconds = self.sets.get(name, {}).get((ip, mac))
        if seconds is None:
            return 1, "", "Error: Could not process rule: No such file or directory"
        return 0, (f"table inet meshhub {{\n\tset allowed {{\n\t\telements = {{ {ip} . {mac} "
                   f"timeout {seconds}s expires {seconds}s }}\n\t}}\n}}\n"), ""


#: One element line of an ``nft -f`` script for the allow set: op, ip, mac and (for add)
#: the timeout.
ELEMENT_LINE = re.compile(r"^(add|delete) element inet meshhub (allowed|notice_read) "
                          r"\{ (\S+) \. (\S+)(?: timeout (\d+)s)? \}$", re.MULTILINE)
FLUSH_LINE = re.compile(r"^flush set inet meshhub (\S+)$", re.MULTILINE)


def manager(shell: FakeShell, **kwargs: object) -> GateManager:
    return GateManager("ap0", allow_seconds=3600, subnet="10.64.7.0/24", runner=shell,
                       **kwargs)  # type: ignore[arg-type]


def test_allow_is_one_transaction_that_restarts_the_timer() -> None:
    shell = FakeShell()
    status = manager(shell).allow(PHONE)
    assert status.allowed and status.mac == MAC and status.seconds_remaining == 3600
    argv, script = shell.calls[-1]
    assert argv == ["nft", "-f", "-"]
    assert script == (f"add element inet meshhub allowed {{ {PHONE} . {MAC} timeout 3600s }}\n"
                      f"delete element inet meshhub allowed {{ {PHONE} . {MAC} }}\n"
                      f"add element inet meshhub allowed {{ {PHONE} . {MAC} timeout 3600s }}\n")
    assert shell.calls[0][0] == ["ip", "-j", "neigh", "show", "dev", "ap0", "to", PHONE]


def test_status_reads_the_seconds_remaining_from_nft() -> None:
    element = ("table inet meshhub {\n\tset allowed {\n\t\ttype ipv4_addr . ether_addr\n"
               f"\t\telements = {{ {PHONE} . {MAC} timeout 1h expires 59m58s120ms }}\n\t}}\n}}\n")
    status = manager(FakeShell(element=element)).status(PHONE)
    assert status.allowed and status.seconds_remaining == 3598
    assert not manager(FakeShell()).status(PHONE).allowed


def test_an_address_the_node_has_not_seen_cannot_be_allowed() -> None:
    shell = FakeShell(neigh=json.dumps([{"dst": PHONE, "dev": "ap0", "state": ["FAILED"]}]))
    with pytest.raises(GateError) as caught:
        manager(shell).allow(PHONE)
    assert caught.value.code == "unknown-device"
    assert not any(call[0][0] == "nft" for call in shell.calls)
    assert manager(shell).status(PHONE).allowed is False


def test_only_client_addresses_are_accepted() -> None:
    for bad in ("10.42.0.7", "0.0.0.0"):
        with pytest.raises(GateError) as caught:
            manager(FakeShell()).allow(bad)
        assert caught.value.code == "not-a-client"
    with pytest.raises(GateError):
        manager(FakeShell()).allow("10.64.7.50; flush ruleset")


def test_open_mode_counts_everyone_as_allowed() -> None:
    status = manager(FakeShell(neigh="[]"), mode="open").status(PHONE)
    assert status.allowed and status.mode == "open" and status.seconds_remaining is None


def test_nft_failure_is_reported() -> None:
    def failing(argv: Sequence[str], stdin: str | None) -> tuple[int, str, str]:
        return (0, NEIGH, "") if argv[0] == "ip" else (1, "", "Error: No such file or directory")
    with pytest.raises(GateError) as caught:
        GateManager("ap0", allow_seconds=60, runner=failing).allow(PHONE)
    assert caught.value.code == "gate-failed" and "No such file" in caught.value.message


def test_mac_from_proc_net_arp(tmp_path: Path) -> None:
    arp = tmp_path / "arp"
    arp.write_text("IP address       HW type     Flags       HW address   Mask     Device\n"
                   f"{PHONE}       0x1         0x2         {MAC.upper()}     *        ap0\n"
                   "10.64.7.51       0x1         0x0         00:00:00:00:00:00     *        ap0\n")
    gate = GateManager("ap0", allow_seconds=60, runner=FakeShell(), arp_path=arp)
    assert gate.mac_of(PHONE) == MAC
    assert gate.mac_of("10.64.7.51") is None


def test_list_parses_nft_json() -> None:
    listing = json.dumps({"nftables": [{"metainfo": {}}, {"set": {"name": "allowed", "elem": [
        {"elem": {"val": {"concat": [PHONE, MAC]}, "timeout": 90, "expires": 89}}]}}]})

    def shell(argv: Sequence[str], stdin: str | None) -> tuple[int, str, str]:
        return 0, listing, ""
    elements = GateManager("ap0", allow_seconds=60, runner=shell).elements()
    assert [(e.ip, e.mac, e.seconds_remaining) for e in elements] == [(PHONE, MAC, 89)]


@pytest.mark.parametrize("text,ms", [("59m58s120ms", 3598120), ("1d", 86400000), ("3s", 3000)])
def test_nft_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("line", [
    b"", b"[]", b"not json", b'{"op":"allow"}', b'{"op":"allow","ip":"10.64.7.50","x":1}',
    b'{"op":"flush","ip":"10.64.7.50"}', b'{"op":"allow","ip":"10.64.7.500"}',
    b'{"op":"allow","ip":"::1"}', b'{"op":"allow","ip":7}', b"\xff\xfe",
    b'{"op":"allow","ip":"' + b"1" * MAX_REQUEST_BYTES + b'"}',
])
def test_protocol_refuses_anything_but_a_well_formed_request(line: bytes) -> None:
    with pytest.raises(GateError) as caught:
        parse_request(line)
    assert caught.value.code == "bad-request"


def test_protocol_accepts_the_three_operations() -> None:
    for op in ("allow", "status", "remove"):
        request = parse_request(f'{{"op": "{op}", "ip": "10.64.7.50"}}'.encode())
        assert (request.op, request.ip) == (op, PHONE)


def test_mode_switch_overrides_node_toml_and_a_damaged_file_does_not_open(
        tmp_path: Path) -> None:
    cfg = parse_config(f'[node]\ndata_dir = "{tmp_path}"\n[gate]\nmode = "portal"\n')
    assert effective_mode(cfg) == "portal"
    path = tmp_path / "gate-mode.json"
    write_switch(path, "open", set_by="ada")
    assert effective_mode(cfg) == "open"
    assert read_switch(path).set_by == "ada"  # type: ignore[union-attr]
    path.write_text('{"mode": "wide-open"}')
    with pytest.raises(ConfigError, match=r"gate-mode\.json"):
        read_switch(path)
    assert effective_mode(cfg) == "portal"
    write_switch(path, None, set_by="ada")
    assert not path.exists()
