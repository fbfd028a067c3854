"""Parsing babeld's local monitoring interface (``dump`` and ``monitor`` output).

babeld (1.12) answers on its ``local-path`` socket (or ``local-port``) with a
greeting (``BABEL 1.0``, ``version ...``, ``host ...``, ``my-id ...``, ``ok``),
then one line per object and event::

    add interface m0 up true ipv6 fe80::...
    add neighbour 55a1dc54d630 address fe80::... if m0 reach ffff ureach 0000 rxcost 96 \
txcost 96 cost 96
    add xroute 10.42.0.1/32-0.0.0.0/0 prefix 10.42.0.1/32 from 0.0.0.0/0 metric 0
    add route 55a1dc54c620 prefix 10.42.0.2/32 from 0.0.0.0/0 installed yes id 0c:d4:... \
metric 96 refmetric 0 via fe80::... if m0

``change`` replaces an object's fields and ``flush`` removes it. Everything here is
pure (text in, values out) and tested on output captured from a real babeld
(``tests/fixtures/babel/``). Unknown lines are ignored, never guessed at.
"""

from __future__ import annotations

from dataclasses import field

from node.frozen import frozen

#: babeld's metric for "unreachable" (a retracted or unfeasible route, a dead link).
INFINITY = 0xFFFF
ACTIONS = ("add", "change", "flush")
KINDS = ("interface", "neighbour", "route", "xroute")


@frozen
class Event:
    """One ``add``/``change``/``flush`` line: what happened to which object."""

    action: str
    kind: str
    key: str
    fields: dict[str, str] = field(default_factory=dict)


@frozen
class Interface:
    """An interface babeld was told to use; ``up`` is false while it does not exist."""

    name: str
    up: bool
    ipv6: str | None


@frozen
class Neighbour:
    """A node heard directly on a link, with babeld's link quality.

    ``reach`` is the 16-bit history of hellos heard (``ffff``: all of the last 16);
    ``cost`` is what babeld adds for this hop (``65535``: the link is dead).
    """

    key: str
    address: str
    interface: str
    reach: int
    rxcost: int
    txcost: int
    cost: int

    @property
    def reach_ratio(self) -> float:
        """Share of the last 16 hellos that were heard (0..1)."""
        return bin(self.reach & 0xFFFF).count("1") / 16

    @property
    def alive(self) -> bool:
        """Whether babeld still considers the link usable."""
        return self.cost < INFINITY


@frozen
class Route:
    """A route babeld learned from a neighbour (``installed``: it is in the kernel)."""

    key: str
    prefix: str
    source: str
    installed: bool
    router_id: str
    metric: int
    refmetric: int
    via: str
    interface: str

    @property
    def reachable(self) -> bool:
        """False for a retracted or unfeasible route (metric 65535)."""
        return self.metric < INFINITY


@frozen
class XRoute:
    """A route this node announces itself (its mesh address, its client subnet)."""

    key: str
    prefix: str
    source: str
    metric: int


def _pairs(tokens: list[str]) -> dict[str, str]:
    return {tokens[i]: tokens[i + 1] for i in range(0, len(tokens) - 1, 2)}


def parse_line(line: str) -> Event | None:
    """The event of one monitoring line, or ``None`` for greetings, ``ok`` and unknown lines."""
    tokens = line.split()
    if len(tokens) < 3 or tokens[0] not in ACTIONS or tokens[1] not in KINDS:
        return None
    return Event(tokens[0], tokens[1], tokens[2], _pairs(tokens[3:]))


def _int(fields: dict[str, str], name: str, base: int = 10, default: int = INFINITY) -> int:
    try:
        return int(fields[name], base)
    except (KeyError, ValueError):
        return default


def to_interface(event: Event) -> Interface:
    """The :class:`Interface` an ``interface`` event describes."""
    return Interface(event.key, event.fields.get("up") == "true", event.fields.get("ipv6"))


def to_neighbour(event: Event) -> Neighbour:
    """The :class:`Neighbour` a ``neighbour`` event describes."""
    f = event.fields
    return Neighbour(event.key, f.get("address", ""), f.get("if", ""),
                     _int(f, "reach", 16, 0), _int(f, "rxcost"), _int(f, "txcost"),
                     _int(f, "cost"))


def to_route(event: Event) -> Route:
    """The :class:`Route` a ``route`` event describes."""
    f = event.fields
    return Route(event.key, f.get("prefix", ""), f.get("from", ""), f.get("installed") == "yes",
                 f.get("id", ""), _int(f, "metric"), _int(f, "refmetric"), f.get("via", ""),
                 f.get("if", ""))


def to_xroute(event: Event) -> XRoute:
    """The :class:`XRoute` an ``xroute`` event describes."""
    f = event.fields
    return XRoute(event.key, f.get("prefix", ""), f.get("from", ""), _int(f, "metric"))


def parse_greeting(lines: list[str]) -> dict[str, str]:
    """``{"protocol", "version", "host", "my-id"}`` from the lines before the first ``ok``."""
    info: dict[str, str] = {}
    for line in lines:
        head, _, rest = line.strip().partition(" ")
        if head == "BABEL":
            info["protocol"] = rest
        elif head in ("version", "host", "my-id"):
            info[head] = rest
    return info
