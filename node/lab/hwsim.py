"""Making and removing simulated radios: mac80211_hwsim's generic netlink commands.

``modprobe mac80211_hwsim radios=N`` makes radios once, for everybody. The module also
takes commands over generic netlink (family ``MAC80211_HWSIM``): ``NEW_RADIO`` makes one
radio, named as asked, in the network namespace of the socket that asks. That is what
the lab uses, for three reasons:

* radios only hear radios made in the same namespace (the module's "netgroup"), so a
  lab making its radios inside a namespace of its own (``mhl-ID-air``) has an air of
  its own, apart from other labs and from the machine's own radios;
* a radio made outside the host's namespace is destroyed with the namespace it is in:
  deleting a lab's namespaces removes its radios, nothing to unload;
* a phone added later gets a new radio: no spare radios to guess in advance.

The messages are built here with :mod:`struct` (a netlink header, a generic netlink
header, attributes), as ``include/uapi/linux/netlink.h`` and the driver's
``mac80211_hwsim.h`` define them.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

from node.lab.netns import LabError

T = TypeVar("T")

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 0x01
NLM_F_ACK = 0x04
NLMSG_ERROR = 0x02
FAMILY = "MAC80211_HWSIM"
HWSIM_CMD_NEW_RADIO = 4
HWSIM_ATTR_RADIO_NAME = 17
CLONE_NEWNET = 0x40000000


def _attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    found, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


class Genl:
    """A generic netlink socket: ask once, read the answer or the kernel's error code."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.settimeout(10)
        self.seq = 0

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def request(self, family: int, command: int, attrs: bytes, version: int = 1
                ) -> tuple[int, bytes]:
        """Send one request with an acknowledgement; ``(code, payload)``: the kernel's
        answer code (negative errno, 0, or a positive result) and any answer's payload."""
        self.seq += 1
        body = struct.pack("BBH", command, version, 0) + attrs
        self.sock.send(struct.pack("IHHII", 16 + len(body), family, NLM_F_REQUEST | NLM_F_ACK,
                                   self.seq, 0) + body)
        payload = b""
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, seq, _pid = struct.unpack_from("IHHII", data, offset)
                if seq == self.seq:
                    if kind == NLMSG_ERROR:
                        return struct.unpack_from("i", data, offset + 16)[0], payload
                    payload = data[offset + 20:offset + length]
                offset += (length + 3) & ~3

    def family(self, name: str) -> int:
        """The id of the generic netlink family ``name``."""
        code, payload = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                                     _attr(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"))
        if code < 0 or CTRL_ATTR_FAMILY_ID not in _attrs(payload):
            raise LabError(f"no generic netlink family {name} (is mac80211_hwsim loaded?): "
                           f"{os.strerror(-code) if code < 0 else 'no id'}")
        return int(struct.unpack("H", _attrs(payload)[CTRL_ATTR_FAMILY_ID][:2])[0])


def in_namespace(namespace: str, work: Callable[[], T]) -> T:
    """Run ``work`` in a thread that has entered network namespace ``namespace``
    (``/run/netns/NAME``); this process's other threads stay where they are."""
    libc = ctypes.CDLL(None, use_errno=True)
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {namespace}")
            finally:
                os.close(fd)
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=body, name=f"netns-{namespace}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def new_radios(names: list[str]) -> None:
    """Make one simulated radio per name (its ``phy`` gets that name) in this thread's
    network namespace; each comes with one interface (``wlanN``)."""
    try:
        genl = Genl()
    except OSError as exc:
        raise LabError(f"no generic netlink socket for mac80211_hwsim: {exc}") from None
    try:
        family = genl.family(FAMILY)
        for name in names:
            code, _ = genl.request(family, HWSIM_CMD_NEW_RADIO,
                                   _attr(HWSIM_ATTR_RADIO_NAME, name.encode()), version=2)
            if code < 0:
                raise LabError(f"mac80211_hwsim refused to make radio {name}: "
                               f"{os.strerror(-code)}")
    except OSError as exc:  # no answer within the socket's timeout
        raise LabError(f"mac80211_hwsim did not answer: {exc}") from None
    finally:
        genl.close()

