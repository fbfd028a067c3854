"""Handing out mesh addresses and client subnets: the lowest free one, never twice.

Addresses of revoked nodes stay reserved, so a stale route or an old lease
can never point at a new node by accident.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from provisioning.errors import RegistryError


def next_mesh_address(mesh_range: str, used: Iterable[str]) -> str:
    """The lowest host address of ``mesh_range`` that no node holds (a /32 per node)."""
    taken = {ipaddress.IPv4Address(a) for a in used}
    for host in ipaddress.IPv4Network(mesh_range).hosts():
        if host not in taken:
            return str(host)
    raise RegistryError(f"mesh_range {mesh_range} is full ({len(taken)} addresses used); "
                        "widen it in community.toml")


def next_client_subnet(client_range: str, prefix: int, used: Iterable[str]) -> str:
    """The lowest ``/prefix`` block of ``client_range`` overlapping no node's subnet."""
    taken = [ipaddress.IPv4Network(n) for n in used]
    for candidate in ipaddress.IPv4Network(client_range).subnets(new_prefix=prefix):
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    raise RegistryError(f"client_range {client_range} has no free /{prefix} left; "
                        "widen it in community.toml")
