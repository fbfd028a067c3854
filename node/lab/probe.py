"""Asking a lab node's agent over HTTP from this process, without starting a process.

Waiting for 200 nodes with ``ip netns exec NS curl`` started hundreds of processes a
second on a machine already busy starting the nodes. Here a worker thread enters the
node's network namespace (``setns(2)`` changes only the calling thread's), opens its
connection there, and returns to this process's namespace before it does anything
else. Linux only, root (as the lab).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import http.client
import os
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class NamespaceError(OSError):
    """The thread could not enter (or leave) a namespace."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NamespaceError(err, os.strerror(err))


@contextlib.contextmanager
def in_namespace(namespace: str) -> Iterator[None]:
    """Run the block in the calling thread inside network namespace ``namespace``; the
    thread is back in its own namespace afterwards (or the process stops: a thread left
    in a node's namespace would talk to the wrong network)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_DIR / namespace, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            try:
                _setns(own)
            except NamespaceError as exc:  # never go on in a node's namespace
                os.write(2, f"meshhub: error: cannot leave namespace {namespace}: {exc}\n"
                         .encode())
                os._exit(70)
    finally:
        os.close(own)


def http_get(namespace: str, host: str, port: int, path: str, timeout: float
             ) -> tuple[int, bytes] | None:
    """``GET http://host:port/path`` from inside ``namespace``: (status, body), or None
    when nothing answered within ``timeout`` seconds (connect and each read)."""
    with in_namespace(namespace):
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()  # the socket is made here, in the node's namespace
        except OSError:
            conn.close()
            return None
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(1 << 20)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
