"""Checks of a registry folder: every file, every key, and the files against each other.

Each problem is one line ``FILE:LINE: key: message`` so that ``registry check``
can show them all at once and a reviewer can jump to the spot.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from typing import Any

from node.config.schema import CHECKS
from node.trust.registry import NODE_STATUSES
from provisioning.registry.files import RegistryFiles, TomlFile

_TYPES: dict[type, str] = {str: "a string", int: "an integer", dict: "a table", list: "a list"}


def check_registry(files: RegistryFiles) -> list[str]:
    """Every problem of the registry, syntax errors first; empty when all is well."""
    problems = list(files.problems)
    community = files.community
    if community is None:
        return problems
    mesh, client, prefix = _check_community(community, problems)
    node_problems: list[str] = []
    for stem, node in files.nodes.items():
        _check_node(stem, node, mesh, client, prefix, node_problems)
    problems.extend(node_problems)
    _check_across(files, problems)
    return problems


def _check_community(file: TomlFile, problems: list[str]
                     ) -> tuple[ipaddress.IPv4Network | None, ipaddress.IPv4Network | None, int]:
    data = file.data
    for key in ("name", "ssid", "country", "mesh_range", "client_range"):
        _typed(file, data, key, str, problems)
    if isinstance(data.get("name"), str) and not data["name"].strip():
        problems.append(f"{file.where('name')}: must not be empty")
    ssid = data.get("ssid")
    if isinstance(ssid, str) and not 1 <= len(ssid.encode("utf-8")) <= 32:
        problems.append(f"{file.where('ssid')}: a Wi-Fi name is 1 to 32 bytes, found {ssid!r}")
    _run(file, data, "country", CHECKS["country"], problems)
    mesh = _network(file, data, "mesh_range", problems)
    client = _network(file, data, "client_range", problems)
    if mesh and client and mesh.overlaps(client):
        problems.append(f"{file.where('client_range')}: overlaps mesh_range {mesh}; "
                        "the two ranges must be disjoint")
    prefix = data.get("client_prefix", 24)
    if not isinstance(prefix, int) or isinstance(prefix, bool) or not 16 <= prefix <= 30:
        problems.append(f"{file.where('client_prefix')}: expected an integer from 16 to 30")
        prefix = 24
    elif client and prefix < client.prefixlen:
        problems.append(f"{file.where('client_prefix')}: /{prefix} is larger than "
                        f"client_range {client}")
    channels = data.get("channels", {})
    if not isinstance(channels, dict):
        problems.append(f"{file.where('channels')}: expected a table [channels]")
    else:
        for name, value in channels.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 196:
                problems.append(f"{file.where(name, 'channels')}: expected a Wi-Fi channel "
                                f"number, found {value!r}")
    _check_admins(file, problems)
    return mesh, client, prefix


def _check_admins(file: TomlFile, problems: list[str]) -> None:
    admins = file.data.get("admins")
    if not isinstance(admins, list) or not admins:
        problems.append(f"{file.where('admins')}: at least one [[admins]] entry is needed "
                        "(create a key with 'meshhub-provision registry admin-key new')")
        return
    names: set[str] = set()
    keys: set[str] = set()
    for index, admin in enumerate(admins):
        where = f"{file.path}:{file.line('admins')}: admins[{index}]"
        if not isinstance(admin, dict):
            problems.append(f"{where}: expected a table with name and public_key")
            continue
        name, key = admin.get("name"), admin.get("public_key")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}.name: expected the admin's name")
        elif name in names:
            problems.append(f"{where}.name: {name!r} is listed twice")
        names.add(str(name))
        if (message := CHECKS["ed25519_hex"](key)) is not None:
            problems.append(f"{where}.public_key: {message}, found {key!r}")
        elif key in keys:
            problems.append(f"{where}.public_key: the same key is listed twice")
        keys.add(str(key))
    threshold = file.data.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int) \
            or not 1 <= threshold <= len(admins):
        problems.append(f"{file.where('threshold')}: expected an integer from 1 to "
                        f"{len(admins)} (the number of admins), found {threshold!r}")


def _check_node(stem: str, file: TomlFile, mesh: ipaddress.IPv4Network | None,
                client: ipaddress.IPv4Network | None, prefix: int, problems: list[str]) -> None:
    data = file.data
    for key in ("name", "id", "public_key", "mesh_address", "client_subnet", "status"):
        _typed(file, data, key, str, problems)
    name = data.get("name")
    if isinstance(name, str):
        if (problem := CHECKS["hostname_label"](name)) is not None:
            problems.append(f"{file.where('name')}: {problem}, found {name!r}")
        elif name != stem:
            problems.append(f"{file.where('name')}: {name!r} does not match the file name "
                            f"{stem}.toml; rename one of them")
    public_key = data.get("public_key")
    if isinstance(public_key, str) and (message := CHECKS["ed25519_hex"](public_key)) is not None:
        problems.append(f"{file.where('public_key')}: {message}, found {public_key!r}")
    status = data.get("status")
    if isinstance(status, str) and status not in NODE_STATUSES:
        problems.append(f"{file.where('status')}: expected one of {', '.join(NODE_STATUSES)}, "
                        f"found {status!r}")
    if status == "revoked" and not isinstance(data.get("revoked_at"), dt.datetime | dt.date):
        problems.append(f"{file.where('revoked_at')}: a revoked node needs revoked_at "
                        "(a TOML date-time)")
    address = data.get("mesh_address")
    if isinstance(address, str):
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            problems.append(f"{file.where('mesh_address')}: not an IPv4 address: {address!r}")
        else:
            if mesh and (ip not in mesh or ip in (mesh.network_address, mesh.broadcast_address)):
                problems.append(f"{file.where('mesh_address')}: {ip} is outside mesh_range "
                                f"{mesh} (or is its network/broadcast address)")
    subnet = data.get("client_subnet")
    if isinstance(subnet, str):
        try:
            net = ipaddress.IPv4Network(subnet, strict=True)
        except ValueError as exc:
            problems.append(f"{file.where('client_subnet')}: not an IPv4 network ({exc})")
        else:
            if client and not net.subnet_of(client):
                problems.append(f"{file.where('client_subnet')}: {net} is outside client_range "
                                f"{client}")
            if net.prefixlen != prefix:
                problems.append(f"{file.where('client_subnet')}: expected a /{prefix}, "
                                f"found {net}")
    _check_location(file, problems)
    for key in ("owner", "hardware"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"{file.where(key)}: expected a string")
    if "installed" in data and not isinstance(data["installed"], dt.date):
        problems.append(f"{file.where('installed')}: expected a TOML date such as 2026-11-26")


def _check_location(file: TomlFile, problems: list[str]) -> None:
    location = file.data.get("location")
    if location is None:
        return
    if not isinstance(location, dict):
        problems.append(f"{file.where('location')}: expected a table with lat and lon")
        return
    for key, limit in (("lat", 90), ("lon", 180)):
        value = location.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not -limit <= value <= limit:
            problems.append(f"{file.where(key, 'location')}: expected a number from "
                            f"-{limit} to {limit}, found {value!r}")


def _check_across(files: RegistryFiles, problems: list[str]) -> None:
    """Names, ids, keys and addresses that two files claim at once."""
    admin_keys = {a.get("public_key") for a in (files.community.data.get("admins") or [])
                  if isinstance(a, dict)} if files.community else set()
    seen: dict[tuple[str, str], TomlFile] = {}
    subnets: list[tuple[ipaddress.IPv4Network, TomlFile]] = []
    for file in files.nodes.values():
        for key in ("id", "public_key", "mesh_address"):
            value = file.data.get(key)
            if not isinstance(value, str):
                continue
            other = seen.setdefault((key, value), file)
            if other is not file:
                problems.append(f"{file.where(key)}: {value} is already used by {other.path}")
        if file.data.get("public_key") in admin_keys:
            problems.append(f"{file.where('public_key')}: this is an admin key; a node needs "
                            "its own key")
        try:
            net = ipaddress.IPv4Network(str(file.data.get("client_subnet")), strict=True)
        except ValueError:
            continue
        for other_net, other in subnets:
            if net.overlaps(other_net):
                problems.append(f"{file.where('client_subnet')}: {net} overlaps {other_net} "
                                f"of {other.path}")
        subnets.append((net, file))


def _typed(file: TomlFile, data: dict[str, Any], key: str, expected: type,
           problems: list[str]) -> bool:
    if key not in data:
        problems.append(f"{file.path}:1: {key}: missing; add '{key} = ...'")
        return False
    if not isinstance(data[key], expected):
        problems.append(f"{file.where(key)}: expected {_TYPES[expected]}, found {data[key]!r}")
        return False
    return True


def _run(file: TomlFile, data: dict[str, Any], key: str, check: Callable[[Any], str | None],
         problems: list[str]) -> None:
    if isinstance(data.get(key), str) and (message := check(data[key])) is not None:
        problems.append(f"{file.where(key)}: {message}, found {data[key]!r}")


def _network(file: TomlFile, data: dict[str, Any], key: str,
             problems: list[str]) -> ipaddress.IPv4Network | None:
    value = data.get(key)
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        problems.append(f"{file.where(key)}: must be an IPv4 network such as 10.42.0.0/16 "
                        f"({exc})")
        return None
