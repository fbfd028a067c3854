"""The meshhub files a node's card carries: node.toml, key, snapshot, anchors, hook.

Everything is rendered from the registry and checked the way the node will
check it (``node.config.parse_config``, the network checks, the snapshot's
signatures) before a single byte is written to the card.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from node.config import parse_config
from node.config.schema import settings_by_key
from node.errors import ConfigError
from node.identity import KEY_FILE_NAME, fingerprint, load_identity
from node.net.mesh_sae import KEY_FILE_NAME as MESH_KEY_FILE_NAME
from node.net.mesh_sae import load_key as load_mesh_key
from node.net.validate import network_problems
from node.roam.keys import SECRET_FILE_NAME, load_secret
from node.tls import ensure_certificate
from node.trust.registry import admin_set_from, dump_anchors, parse_snapshot
from provisioning.errors import RegistryError
from provisioning.registry import ops, signing

#: Folder on the boot partition holding meshhub's files.
BOOT_DIR = "meshhub"
HOOK_NAME = "firstboot.sh"
#: The node's HTTPS certificate and key on the card (first boot installs them).
TLS_CERT, TLS_KEY = "tls.crt", "tls.key"


def certificate_files(secrets_dir: Path, name: str) -> tuple[Path, Path]:
    """Where the node's HTTPS certificate and key are kept on the volunteer's laptop
    (beside its node key), so that the poster can print the certificate's fingerprint."""
    return secrets_dir / f"{name}.tls.crt", secrets_dir / f"{name}.tls.key"


@dataclass(frozen=True)
class NodeBundle:
    """What goes into ``meshhub/`` on the card, plus facts for messages and the base OS."""

    name: str
    files: dict[str, bytes]  #: file name inside BOOT_DIR -> content
    wifi_country: str
    serial: int
    key_fingerprint: str
    notes: tuple[str, ...]
    tls_fingerprint: str = ""  #: SHA-256 of the node's HTTPS certificate (on the poster)


def render_node_toml(community: dict[str, Any], node: dict[str, Any], *, country: str,
                     serial: int, roam: bool = False,
                     mesh_key: bool = False) -> tuple[str, list[str]]:
    """``node.toml`` text for ``node`` and notes for the volunteer; raise ConfigError if bad.

    Only keys declared in ``node/config/schema.py`` are written.
    """
    notes: list[str] = []
    channels = community.get("channels", {})
    access = int(channels.get("access", settings_by_key()["wifi.channel"].default))
    values: dict[str, dict[str, Any]] = {
        "node": {"name": node["name"], "community": community["name"]},
        "wifi": {"ssid": community["ssid"], "country": country, "channel": access,
                 "hw_mode": "a" if access > 14 else "g"},
        "mesh": {"address": node["mesh_address"], "mesh_range": community["mesh_range"]},
        "clients": {"subnet": node["client_subnet"], "subnet_pool": community["client_range"],
                    "dhcp": True},
        # A real node: nginx in front of the portal, babeld and zeroconf on, the gate on,
        # dnsmasq (and hostapd on the radio) run by the agent,
        # the agent (sync, health, update mirror) reachable on its mesh address only,
        # signed updates on.
        "portal": {"behind_proxy": True},
        "agent": {"listen": node["mesh_address"]},
        # The portal runs as its own user (images/overlay/usr/lib/sysusers.d), in the
        # agent's group, which the gate's socket belongs to.
        "gate": {"enabled": True, "portal_user": "meshhub-portal", "socket_group": "meshhub"},
        "update": {"enabled": True},
    }
    values["mesh"].update({"routing": True, "discovery": True})
    if roam:  # the community's roaming secret goes on the card too
        values["roam"] = {"enabled": True}
    if mesh_key:  # and its mesh key: the link between nodes is 802.11s with SAE
        values["mesh"]["security"] = "sae"
    if isinstance(node.get("location"), dict):
        values["node"]["coordinates"] = f"{node['location']['lat']}, {node['location']['lon']}"
    mesh_channel = channels.get("mesh")
    if mesh_channel and int(mesh_channel) != access:
        if (int(mesh_channel) > 14) == (access > 14):
            values["mesh"]["channel"] = int(mesh_channel)
        else:
            notes.append(f"the community's mesh channel {mesh_channel} is in another band than "
                         f"its access channel {access}; a single-radio node uses channel "
                         f"{access} for both (set mesh.channel in node.toml for a second radio)")
    known = settings_by_key()
    for section, keys in values.items():
        for key in keys:
            assert f"{section}.{key}" in known, f"{section}.{key} is not in the schema"
    header = (f"# node.toml for {node['name']}, written by 'meshhub-provision customise' from the "
              f"community registry\n# (snapshot serial {serial}, "
              f"{dt.date.today().isoformat()}). See docs/node-toml.md for every key.\n\n")
    text = header + tomli_w.dumps(values)
    cfg = parse_config(text, Path(f"{BOOT_DIR}/node.toml"))
    if problems := network_problems(cfg):
        raise ConfigError([f"{BOOT_DIR}/node.toml: {p}" for p in problems])
    return text, notes


def hook_script() -> bytes:
    """The first-boot hook shipped in ``meshhub/firstboot.sh`` (see its header)."""
    return resources.files("provisioning.customise").joinpath(HOOK_NAME).read_bytes()


def build_bundle(registry: str | Path, name: str, secrets: str | Path | None = None,
                 wifi_country: str | None = None) -> NodeBundle:
    """Render and check every file for node ``name``; raise RegistryError if not possible.

    Refuses a node that is not registered, is revoked, has no key in the
    secrets folder (or a key that does not match the registry), or is not
    in the signed snapshot yet.
    """
    root = Path(registry)
    files = ops.load_registry(root)
    if name not in files.nodes:
        raise RegistryError(f"{root / 'nodes'}: no node named {name!r}; register it first "
                            f"('meshhub-provision registry register {name}') or check the "
                            "spelling ('meshhub-provision registry list')")
    node = files.nodes[name].data
    if node["status"] != "active":
        raise RegistryError(f"{files.nodes[name].path}: {name!r} is revoked; a revoked node's "
                            "card is never prepared again (register a new name)")
    key_file = Path(secrets or ops.default_secrets_dir(root)) / f"{name}.key"
    if not key_file.exists():
        raise RegistryError(f"{key_file}: the node's private key is not there; pass --secrets "
                            "DIR (the folder 'registry register' wrote it to)")
    identity = load_identity(key_file)
    if identity.public_key != node["public_key"]:
        raise RegistryError(f"{key_file}: this key ({identity.fingerprint}) is not the one "
                            f"registered for {name!r} ({fingerprint(node['public_key'])})")
    with tempfile.TemporaryDirectory(prefix="meshhub-snapshot-") as tmp:
        exported = Path(tmp) / "snapshot.json"
        signing.export(root, exported)  # the same checks as 'registry export'
        snapshot_bytes = exported.read_bytes()
    signed = parse_snapshot(snapshot_bytes, "snapshot.json")
    if node["public_key"] not in signed.active_keys:
        raise RegistryError(f"{root}: the signed snapshot (serial {signed.serial}) does not list "
                            f"{name!r} as active; have the admins sign again")
    community = signing.snapshot_content(files)["community"]
    country = wifi_country or community["country"]
    roam_secret = key_file.parent / SECRET_FILE_NAME
    if roam_secret.exists():
        try:
            load_secret(roam_secret)
        except ConfigError as exc:
            raise RegistryError(str(exc)) from None
    mesh_key = key_file.parent / MESH_KEY_FILE_NAME
    if mesh_key.exists():
        try:
            load_mesh_key(mesh_key)
        except ConfigError as exc:
            raise RegistryError(str(exc)) from None
    toml_text, notes = render_node_toml(files.community.data,  # type: ignore[union-attr]
                                        node, country=country, serial=signed.serial,
                                        roam=roam_secret.exists(), mesh_key=mesh_key.exists())
    # The node's HTTPS certificate, made here once (kept beside the node key) so that its
    # fingerprint is known before the node boots: the poster prints it.
    tls = ensure_certificate(parse_config(toml_text, Path(f"{BOOT_DIR}/node.toml")),
                             paths=certificate_files(key_file.parent, name))
    bundle = {
        "node.toml": toml_text.encode("utf-8"),
        KEY_FILE_NAME: key_file.read_bytes(),
        TLS_CERT: tls.cert.read_bytes(),
        TLS_KEY: tls.key.read_bytes(),
        "snapshot.json": snapshot_bytes,
        "anchors.json": dump_anchors(admin_set_from(community, "community.toml")),
        HOOK_NAME: hook_script(),
        "README.txt": _readme(name).encode("utf-8"),
    }
    if roam_secret.exists():
        bundle[SECRET_FILE_NAME] = roam_secret.read_bytes()
    if mesh_key.exists():
        bundle[MESH_KEY_FILE_NAME] = mesh_key.read_bytes()
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {file}\n"
                   for file, data in sorted(bundle.items()))
    bundle["SHA256SUMS"] = sums.encode("ascii")
    return NodeBundle(name, bundle, country, signed.serial, identity.fingerprint, tuple(notes),
                      tls.fingerprint)


def _readme(name: str) -> str:
    return (f"meshhub files for node {name}, written by 'meshhub-provision customise'.\n"
            "At first boot the node runs firstboot.sh, which checks SHA256SUMS, installs\n"
            "node.toml, the node's key (identity.key), its HTTPS certificate and key\n"
            "(tls.crt, tls.key), the signed registry snapshot and the trust anchors, then\n"
            "deletes the keys from this partition. Its log is firstboot.log in this folder.\n"
            "identity.key and tls.key are SECRET: keep this card safe until the node has\n"
            "booted once.\n")
