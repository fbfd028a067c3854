"""Accept once, roam everywhere: keys, announcements, the in-memory table and the gate."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from node.config import parse_config
from node.errors import ConfigError
from node.gate.protocol import Request
from node.gate.service import GateService
from node.identity import Identity
from node.roam import Refused, RoamService, day_key, day_number, device_tag, load_secret
from node.roam.messages import MAX_AGE_SECONDS, MAX_MESSAGE_BYTES, Entry, build, parse
from tests.node.test_gate import MAC, PHONE, FakeShell
from tests.node.test_store_support import FakeClock

SECRET = bytes(range(32))
NOW = 1_764_000_000.0
OTHER_MAC = "02:00:00:00:00:99"


def pair(clock: FakeClock) -> tuple[RoamService, RoamService, list[tuple[str, bytes]]]:
    """Two nodes' services that trust each other; what the first sends is recorded."""
    a, b = Identity.generate(), Identity.generate()
    keys = {a.public_key, b.public_key}
    sent: list[tuple[str, bytes]] = []
    first = RoamService(SECRET, a, keys.__contains__, clock=clock,
                        send=lambda url, body: sent.append((url, body)))
    second = RoamService(SECRET, b, keys.__contains__, clock=clock)
    return first, second, sent


def test_every_node_computes_the_same_tag_and_it_changes_every_day() -> None:
    day = day_number(NOW)
    assert device_tag(day_key(SECRET, day), MAC) == device_tag(day_key(bytes(SECRET), day),
                                                              MAC.upper())
    assert device_tag(day_key(SECRET, day), MAC) != device_tag(day_key(SECRET, day + 1), MAC)
    assert device_tag(day_key(SECRET, day), MAC) != device_tag(day_key(b"x" * 32, day), MAC)
    tag = device_tag(day_key(SECRET, day), MAC)
    assert len(tag) == 32 and MAC.replace(":", "") not in tag


def test_the_secret_file_must_be_64_hex_digits(tmp_path: Path) -> None:
    path = tmp_path / "roaming.secret"
    with pytest.raises(ConfigError, match="no roaming secret"):
        load_secret(path)
    path.write_text("not hex\n")
    with pytest.raises(ConfigError, match="64 hex digits"):
        load_secret(path)
    path.write_text(SECRET.hex() + "\n")
    assert load_secret(path) == SECRET


def test_an_acceptance_travels_as_a_tag_and_lets_the_device_through_elsewhere() -> None:
    clock = FakeClock(NOW)
    first, second, _sent = pair(clock)
    first.accepted(MAC, 3600)
    body = first._outbox.get_nowait()
    assert MAC not in body.decode() and MAC.replace(":", "") not in body.decode()
    assert second.until(MAC) is None
    second.receive(body)
    assert second.until(MAC) == int(NOW) + 3600
    assert second.until(OTHER_MAC) is None
    status = json.dumps(second.status())
    assert '"known": 1' in status and json.loads(body)["accepted"][0]["tag"] not in status
    # Forgotten on expiry, whatever the day.
    clock.now += 3600
    assert second.until(MAC) is None and second.status()["known"] == 0
    # A flooded announcement is passed on unchanged.
    assert second._outbox.get_nowait() == body


def test_an_acceptance_made_yesterday_still_counts_today() -> None:
    clock = FakeClock(day_number(NOW) * 86_400 + 86_000.0)  # 400 s before midnight UTC
    first, second, _sent = pair(clock)
    first.accepted(MAC, 7200)
    clock.now += 60
    second.receive(first._outbox.get_nowait())
    clock.now += 1000  # the next day
    assert second.until(MAC) == int(clock.now - 1060) + 7200


def test_forged_replayed_stale_oversized_and_malformed_announcements_are_refused() -> None:
    clock = FakeClock(NOW)
    first, second, _sent = pair(clock)
    entry = Entry(day_number(NOW), "ab" * 16, int(NOW) + 60)
    good = build(first._identity, [entry], NOW, flood=True)
    stranger = build(Identity.generate(), [entry], NOW, flood=True)
    body = json.loads(good)
    body["accepted"][0]["until"] += 86_400  # a resident stretching an acceptance
    forged = json.dumps(body).encode()
    stale = build(first._identity, [entry], NOW - MAX_AGE_SECONDS - 1, flood=True)
    cases = {"unregistered": stranger, "bad-signature": forged, "stale": stale,
             "oversized": b" " * (MAX_MESSAGE_BYTES + 1), "malformed": b"[1, 2]"}
    for reason, raw in cases.items():
        with pytest.raises(Refused) as caught:
            second.receive(raw)
        assert caught.value.reason == reason
    second.receive(good)
    with pytest.raises(Refused) as caught:
        second.receive(good)
    assert caught.value.reason == "replayed"
    counters = second.status()["counters"]
    assert counters["received"] == 1
    assert {k: v for k, v in counters.items() if k.startswith("refused_")} == {
        f"refused_{r}": 1 for r in [*cases, "replayed"]}
    assert second.until(MAC) is None  # only the good one's tag is known, and it is not MAC's
    for bad in ({"v": 1}, {**json.loads(good), "accepted": [{"day": 1, "tag": "zz", "until": 1}]}):
        with pytest.raises(Refused, match=r"wrong form|entry|keys"):
            parse(json.dumps(bad).encode(), NOW, lambda _key: True)


def test_the_agent_api_takes_announcements_and_shows_only_counts() -> None:
    clock = FakeClock(NOW)
    first, second, _sent = pair(clock)
    first.accepted(MAC, 600)
    body = first._outbox.get_nowait()

    def call(method: str, path: str, data: bytes = b"") -> tuple[str, bytes]:
        import io

        seen: list[str] = []
        out = second.wsgi({"REQUEST_METHOD": method, "PATH_INFO": path,
                           "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data)},
                          lambda status, _headers: seen.append(status))
        return seen[0], b"".join(out)

    assert call("POST", "/roam/v1/announce", body)[0] == "204 No Content"
    assert call("POST", "/roam/v1/announce", body)[0] == "409 Conflict"
    assert call("POST", "/roam/v1/announce", b"{}")[0] == "400 Bad Request"
    status, text = call("GET", "/roam/v1/status")
    assert status == "200 OK" and json.loads(text)["known"] == 1


def test_announcements_reach_every_neighbour_and_stop_cleanly() -> None:
    clock = FakeClock(NOW)
    first, _second, sent = pair(clock)
    first.add_peer_source(lambda: ["http://10.42.0.2:9180", "http://10.42.0.3:9180/"])
    arrived = threading.Event()
    send = first._send
    first._send = lambda url, body: (send(url, body), len(sent) == 2 and arrived.set())
    first.start()
    try:
        first.accepted(MAC, 600)
        assert arrived.wait(10)
    finally:
        first.stop()
    assert sorted(url for url, _ in sent) == ["http://10.42.0.2:9180", "http://10.42.0.3:9180"]
    assert first.status()["known"] == 0  # stopping forgets


def gate(tmp_path: Path, shell: FakeShell, roam: RoamService, mode: str = "portal") -> GateService:
    cfg = parse_config(f'[node]\nname = "elm"\ndata_dir = "{tmp_path}"\n[wifi]\n'
                       f'ap_interface = "ap0"\n[mesh]\naddress = "10.42.0.7"\n[clients]\n'
                       f'subnet = "10.64.7.0/24"\n[gate]\nenabled = true\nmode = "{mode}"\n'
                       f'socket = "{tmp_path / "gate.sock"}"\nportal_user = "nobody"\n')
    return GateService(cfg, runner=shell, roam=roam)


def test_the_gate_lets_a_roaming_device_through_at_its_lease(tmp_path: Path) -> None:
    first, second, _sent = pair(FakeClock(time.time()))
    first.accepted(MAC, 3600)
    second.receive(first._outbox.get_nowait())
    shell = FakeShell()
    service = gate(tmp_path, shell, second)
    service.handle(Request("lease", PHONE, MAC, 3600))
    script = shell.calls[-1][1] or ""
    assert f"add element inet meshhub allowed {{ {PHONE} . {MAC} timeout 3" in script
    # A device nobody accepted only gets its lease bound.
    shell.calls.clear()
    service.handle(Request("lease", "10.64.7.51", OTHER_MAC, 3600))
    assert "allowed" not in "".join(call[1] or "" for call in shell.calls)
    # Accepting here announces the device; in forced mode nobody roams in.
    third = gate(tmp_path, FakeShell(), first)
    third.handle(Request("allow", PHONE))
    assert first._outbox.qsize() == 1
    forced_shell = FakeShell()
    gate(tmp_path, forced_shell, second, mode="forced").handle(Request("lease", PHONE, MAC, 3600))
    assert "allowed" not in "".join(call[1] or "" for call in forced_shell.calls)


def test_over_http_only_a_registered_nodes_signed_request_is_heard() -> None:
    from waitress.server import create_server

    from node.agent_auth import RequestAuth, guard
    from node.roam.service import post_announcement
    from node.waitress_thread import WaitressThread

    clock = FakeClock(time.time())
    first, second, _sent = pair(clock)
    first.accepted(MAC, 600)
    body = first._outbox.get_nowait()
    keys = {first._identity.public_key}
    app = guard(second.wsgi, RequestAuth(keys.__contains__, second._identity,
                                         is_local=lambda _address: False),
                1 << 16, ("/roam/",))
    server = WaitressThread(create_server(app, host="127.0.0.1", port=0, threads=1), "roam-api")
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        with pytest.raises(OSError, match="401"):
            post_announcement(url, body)  # unsigned
        with pytest.raises(OSError, match="401"):
            post_announcement(url, body, Identity.generate())  # signed by a stranger
        assert second.status()["known"] == 0
        post_announcement(url, body, first._identity)
        assert second.until(MAC) is not None
    finally:
        server.stop()


def test_switching_a_node_to_forced_revokes_acceptances_everywhere(tmp_path: Path) -> None:
    clock = FakeClock(time.time())
    first, second, _sent = pair(clock)
    first.accepted(MAC, 3600)
    second.receive(first._outbox.get_nowait())
    assert second.until(MAC) is not None
    shell = FakeShell()
    service = gate(tmp_path, shell, first)
    service.apply_mode("forced")
    assert first.until(MAC) is None
    forget = first._outbox.get_nowait()
    assert json.loads(forget)["forget"] is True and json.loads(forget)["flood"] is True
    second.receive(forget)
    assert second.until(MAC) is None and second.status()["known"] == 0
    passed_on = [second._outbox.get_nowait() for _ in range(second._outbox.qsize())]
    assert passed_on[-1] == forget  # passed on to the rest of the mesh
    service.apply_mode("forced")  # applying again announces nothing new
    assert first._outbox.empty()


def test_a_bind_announces_the_portal_so_a_phone_s_dropped_arp_is_answered(
        tmp_path: Path) -> None:
    from node.gate.garp import announce, garp_frame

    frame = garp_frame("02:00:00:00:00:01", "10.64.7.1")
    # Ethernet broadcast from the node, ARP request: 10.64.7.1 is at 02:..:01, asked of
    # itself (gratuitous), padded to the shortest frame.
    assert frame[:14] == bytes.fromhex("ffffffffffff" "020000000001" "0806")
    assert frame[14:22] == bytes.fromhex("0001" "0800" "06" "04" "0001")
    assert frame[22:42] == bytes.fromhex("020000000001" "0a400701" "000000000000" "0a400701")
    assert len(frame) == 60
    # Never sent from an interface that does not hold the address (not this node).
    assert announce("lo", "10.64.7.1") is False
    sent: list[tuple[str, str]] = []
    _first, second, _sent = pair(FakeClock(time.time()))
    cfg = gate(tmp_path, FakeShell(), second).cfg
    service = GateService(cfg, runner=FakeShell(), roam=second,
                          announce=lambda *args: sent.append(args) or True)
    service.handle(Request("lease", PHONE, MAC, 3600))
    assert sent == [("ap0", "10.64.7.1")]


def test_a_neighbour_that_did_not_take_an_announcement_gets_it_once_more(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood is sent once; a neighbour too busy to answer in time (an OSError) is sent it
    again after RETRY_SECONDS, once, instead of learning of the acceptance only at the next
    gossip round (a minute)."""
    from node.roam import service as roam_service

    monkeypatch.setattr(roam_service, "RETRY_SECONDS", 0.2)
    tries: list[tuple[str, float]] = []
    twice = threading.Event()

    def busy_then_fine(url: str, body: bytes) -> None:
        tries.append((url, time.monotonic()))
        if url.endswith("busy") and len([t for t in tries if t[0] == url]) >= 2:
            twice.set()
        if url.endswith("busy") or url.endswith("down"):
            raise OSError("no answer within 2s")

    node = RoamService(SECRET, Identity.generate(), lambda _key: True, send=busy_then_fine,
                       gossip_seconds=3600)
    node.add_peer_source(lambda: ["http://n2:9180/busy", "http://n3:9180/down",
                                  "http://n4:9180/fine"])
    node.start()
    try:
        node.accepted(MAC, 3600)
        assert twice.wait(5)
        time.sleep(0.6)  # time for a third try, which must not come
    finally:
        node.stop()
    per_peer = {url: [when for u, when in tries if u == url] for url, _ in tries}
    assert len(per_peer["http://n4:9180/fine"]) == 1
    assert len(per_peer["http://n2:9180/busy"]) == 2 == len(per_peer["http://n3:9180/down"])
    busy = per_peer["http://n2:9180/busy"]
    assert busy[1] - busy[0] >= 0.15
    assert node.counters["send_failed"] == 4 and node.counters["sent"] == 1
