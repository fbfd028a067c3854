"""Refuse a bad network section of ``node.toml`` before anything is rendered or touched.

The schema (``node/config/schema.py``) checks each key alone; this module checks what
only makes sense together: the channel in that country, names that fit the radio,
addresses inside their ranges, subnets that do not overlap, distinct interfaces.
"""

from __future__ import annotations

import re

from node.config import NodeConfig
from node.errors import ConfigError
from node.net.addressing import AddressPlan, address_plan, address_problems
from node.net.regulatory import channel_problem

_IFNAME = re.compile(r"[A-Za-z0-9_.\-]{1,15}")


def network_problems(cfg: NodeConfig) -> list[str]:
    """Every problem of the network settings, each as ``key: reason`` (empty when fine)."""
    problems: list[str] = []
    for key, value in (("wifi.ssid", cfg.wifi.ssid), ("mesh.mesh_id", cfg.mesh.mesh_id)):
        size = len(str(value).encode("utf-8"))
        if not 1 <= size <= 32:
            problems.append(f"{key}: must be 1-32 bytes of UTF-8, found {size} bytes")
    country, mode = cfg.wifi.country, cfg.wifi.hw_mode
    if message := channel_problem(country, mode, cfg.wifi.channel):
        key = "wifi.country" if "country code" in message else "wifi.channel"
        problems.append(f"{key}: {message}")
    elif cfg.mesh.channel and (message := channel_problem(country, mode, cfg.mesh.channel)):
        problems.append(f"mesh.channel: {message}")
    if cfg.mesh.security == "sae" and cfg.mesh.mode != "802.11s":
        problems.append("mesh.security: 'sae' needs mesh.mode = '802.11s' (an IBSS link here "
                        "is open); set mesh.security = 'open' or use a radio with 802.11s")
    interfaces = {"wifi.ap_interface": cfg.wifi.ap_interface, "mesh.interface": cfg.mesh.interface}
    if cfg.clients.uplink_interface:
        interfaces["clients.uplink_interface"] = cfg.clients.uplink_interface
    elif cfg.clients.uplink_check:
        problems.append("clients.uplink_check: set, but clients.uplink_interface is empty; "
                        "name the uplink's interface or remove the check")
    for index, name in enumerate(cfg.mesh.wired_interfaces):
        interfaces[f"mesh.wired_interfaces[{index + 1}]"] = name
    seen: dict[str, str] = {}
    for key, name in interfaces.items():
        if not _IFNAME.fullmatch(name):
            problems.append(f"{key}: {name!r} is not an interface name "
                            "(1-15 letters, digits, '_', '.', '-')")
        elif name in seen:
            problems.append(f"{key}: {name!r} is already used by {seen[name]}")
        seen.setdefault(name, key)
    for port in cfg.gate.management_ports:
        if not 1 <= port <= 65535:
            problems.append(f"gate.management_ports: {port} is not a TCP port (1-65535)")
        elif port == cfg.gate.portal_port:
            problems.append(f"gate.management_ports: {port} is gate.portal_port; residents "
                            "must reach the portal")
    problems.extend(address_problems(cfg))
    return problems


def check_network(cfg: NodeConfig) -> AddressPlan:
    """The node's address plan, or :class:`ConfigError` naming every bad key and why."""
    problems = network_problems(cfg)
    if problems:
        where = str(cfg.path) if cfg.path else "node.toml"
        raise ConfigError([f"{where}: {p}" for p in problems])
    return address_plan(cfg)
