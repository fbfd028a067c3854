"""A waitress server in a thread: stopping closes each descriptor once, and nobody uses it after."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from waitress.server import create_server

from bench.waiting import wait_for
from node.agent_server import create_bounded_server
from node.waitress_thread import WaitressThread


def test_a_request_in_flight_never_wakes_a_closed_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that finishes after stop() began must not write to the closed wake-up pipe.

    Its number may belong to another file by then (a SQLite database in the agent).
    """
    entered, release = threading.Event(), threading.Event()

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        entered.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"late"]

    server = create_server(slow, host="127.0.0.1", port=0, threads=2)
    pipe = tuple(server.trigger._fds)
    events: list[tuple[str, int]] = []
    real_write, real_close = os.write, os.close

    def write(fd: int, data: bytes) -> int:
        if fd in pipe:
            events.append(("write", fd))
        return real_write(fd, data)

    def close(fd: int) -> None:
        if fd in pipe:
            events.append(("close", fd))
        real_close(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "close", close)
    served = WaitressThread(server, "test-waitress")
    served.start()
    outcome: list[object] = []

    def ask() -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{served.port}/", timeout=10) as r:
                outcome.append(r.read())
        except (OSError, http.client.HTTPException) as exc:  # closed under it: fine
            outcome.append(exc)

    client = threading.Thread(target=ask)
    client.start()
    assert entered.wait(10)
    stopper = threading.Thread(target=served.stop)
    stopper.start()
    release.set()  # the worker finishes while the loop is stopping
    stopper.join(20)
    client.join(20)
    assert not stopper.is_alive() and not served.is_alive()
    closes = [fd for kind, fd in events if kind == "close"]
    assert sorted(closes) == sorted(pipe), events  # both ends, each exactly once
    first_close = events.index(("close", pipe[1]))
    assert ("write", pipe[1]) not in events[first_close:], events


def test_stop_before_start_closes_the_listener() -> None:
    server = create_server(lambda e, s: [], host="127.0.0.1", port=0, threads=1)
    served = WaitressThread(server, "never-started")
    port = served.port
    served.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _ok(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _counting_turns(server: Any) -> list[float]:
    """When each turn of the server's loop began (each poll asks the listener ``readable``)."""
    turns: list[float] = []
    readable = server.readable

    def counted() -> bool:
        turns.append(time.monotonic())
        return bool(readable())

    server.readable = counted
    return turns


def test_an_idle_server_does_not_wake_and_still_closes_a_late_slow_connection() -> None:
    """With no connection open the loop waits without a timeout (an idle agent's API thread
    woke every 5 s before). A connection that comes after that long wait and sends nothing
    is still closed by the request deadline (issue 17): the loop ticks again while one is
    open."""
    server = create_bounded_server(_ok, host="127.0.0.1", port=0, threads=1)
    server.request_deadline = 1.0
    turns = _counting_turns(server)
    served = WaitressThread(server, "test-idle")
    served.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{served.port}/", timeout=5) as answer:
            assert answer.read() == b"ok"
        wait_for("the connection to close", lambda: not server.active_channels, timeout=5)
        time.sleep(0.2)
        idle_from = len(turns)
        time.sleep(6)
        assert len(turns) == idle_from, turns[idle_from:]  # 6 s idle: not one turn
        opened = time.monotonic()
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as slow:
            assert slow.recv(1) == b""  # closed by the server, nothing sent
        # The deadline (1 s), the next cleanup (every 1 s) and a poll's wait (0.5 s)
        assert time.monotonic() - opened < 4
    finally:
        served.stop()


def test_stop_wakes_a_loop_waiting_without_a_timeout_when_its_pipe_fails() -> None:
    server = create_bounded_server(_ok, host="127.0.0.1", port=0, threads=1)
    served = WaitressThread(server, "test-knock")
    served.start()
    time.sleep(0.3)  # asleep in its poll

    def broken() -> None:
        raise OSError("the wake-up pipe is broken")

    server.pull_trigger = broken
    started = time.monotonic()
    served.stop()
    assert not served.is_alive()
    assert time.monotonic() - started < 2  # woken by a connection, not a poll's timeout
