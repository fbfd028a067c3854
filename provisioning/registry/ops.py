"""Registry changes: create a registry, make admin keys, register and revoke nodes.

Every change first checks the whole registry (nothing is written into a
registry that is already broken) and then writes whole files atomically, so
an error leaves the registry exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.atomic import atomic_write
from node.config.schema import CHECKS
from node.identity import Identity, load_identity, save_identity
from provisioning.errors import RegistryError
from provisioning.registry.allocation import next_client_subnet, next_mesh_address
from provisioning.registry.checks import check_registry
from provisioning.registry.files import (
    COMMUNITY_FILE,
    NODES_DIR,
    RegistryFiles,
    TomlFile,
    read_files,
    write_community,
    write_node,
)

DEFAULT_MESH_RANGE = "10.42.0.0/16"
DEFAULT_CLIENT_RANGE = "10.64.0.0/10"
#: Wi-Fi channel for both the access point and the mesh: a single-radio node (most Pis)
#: runs both on one channel, and 2.4 GHz channel 6 is legal in every country.
DEFAULT_CHANNEL = 6


@dataclass(frozen=True)
class Registered:
    """A node just registered: its record and where its private key was written."""

    record: dict[str, Any]
    key_file: Path


def load_registry(root: str | Path) -> RegistryFiles:
    """Read and check the registry at ``root``; raise RegistryError listing every problem."""
    files = read_files(root)
    problems = check_registry(files)
    if problems:
        raise RegistryError(problems)
    return files


def new_admin_key(path: str | Path) -> Identity:
    """Create an admin's Ed25519 key file (mode 0600) and ``FILE.pub`` to share.

    Never overwrites a key.
    """
    file = Path(path)
    if file.exists():
        raise RegistryError(f"{file}: already exists; an admin key is never overwritten "
                            "(choose another file name)")
    identity = Identity.generate()
    save_identity(identity, file)
    atomic_write(file.with_name(file.name + ".pub"), identity.public_key + "\n")
    return identity


def admin_public_key(path: str | Path) -> str:
    """The public key in an admin's ``.pub`` file or private key file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{file}: cannot read the admin key ({exc})") from None
    if CHECKS["ed25519_hex"](text) is None:
        return text
    return load_identity(file).public_key


def admin_name(path: str | Path) -> str:
    """The admin's name from a key file name: ``ana.key`` or ``ana.key.pub`` -> ``ana``."""
    name = Path(path).name
    for suffix in (".pub", ".key"):
        name = name.removesuffix(suffix)
    return name


def init_registry(root: str | Path, *, name: str, ssid: str, country: str,
                  admin_keys: list[tuple[str, str]], threshold: int = 1,
                  mesh_range: str = DEFAULT_MESH_RANGE,
                  client_range: str = DEFAULT_CLIENT_RANGE,
                  channels: dict[str, int] | None = None) -> Path:
    """Create a registry folder with its community.toml.

    ``admin_keys`` holds ``(admin name, key file)`` pairs; only public keys
    are copied into the registry.
    """
    base = Path(root)
    if (base / COMMUNITY_FILE).exists():
        raise RegistryError(f"{base / COMMUNITY_FILE}: already exists; this is a registry")
    if not admin_keys:
        raise RegistryError("at least one admin key is needed: create one with "
                            "'meshhub-provision registry admin-key new FILE' and pass "
                            "--admin NAME=FILE")
    admins = [{"name": n, "public_key": admin_public_key(f)} for n, f in admin_keys]
    data: dict[str, Any] = {
        "name": name, "ssid": ssid, "country": country, "mesh_range": mesh_range,
        "client_range": client_range, "client_prefix": 24, "threshold": threshold,
        "channels": channels or {"mesh": DEFAULT_CHANNEL, "access": DEFAULT_CHANNEL},
        "admins": admins,
    }
    probe = read_files(base)  # report problems before anything is written
    probe.community = TomlFile(base / COMMUNITY_FILE, data, "")
    probe.problems = []
    if problems := check_registry(probe):
        raise RegistryError(problems)
    (base / NODES_DIR).mkdir(parents=True, exist_ok=True)
    (base / NODES_DIR / ".gitkeep").touch()
    return write_community(base, data)


def default_secrets_dir(root: Path) -> Path:
    """Where node keys go by default: ``<registry>/../secrets``."""
    return root.resolve().parent / "secrets"


def ensure_roaming_secret(secrets_dir: Path) -> Path:
    """The community's roaming secret in ``secrets_dir`` (created once, 32 random bytes as
    64 hex digits, mode 0600): every node gets the same one on its card, so that all
    compute the same roaming tags (node/roam/keys.py). Like node keys, it never goes
    into the registry."""
    import secrets as random_bytes

    from node.atomic import atomic_write
    from node.roam.keys import SECRET_FILE_NAME

    path = secrets_dir / SECRET_FILE_NAME
    if not path.exists():
        atomic_write(path, random_bytes.token_hex(32) + "\n", mode=0o600)
    return path


def ensure_mesh_key(secrets_dir: Path) -> Path:
    """The community's mesh key in ``secrets_dir`` (created once, 32 random bytes as 64 hex
    digits, mode 0600): the SAE password of the 802.11s link between nodes
    (node/net/mesh_sae.py), the same on every card. Never goes into the registry."""
    import secrets as random_bytes

    from node.atomic import atomic_write
    from node.net.mesh_sae import KEY_FILE_NAME

    path = secrets_dir / KEY_FILE_NAME
    if not path.exists():
        atomic_write(path, random_bytes.token_hex(32) + "\n", mode=0o600)
    return path


def register_node(root: str | Path, name: str, *, secrets: str | Path | None = None,
                  location: tuple[float, float] | None = None, owner: str = "",
                  hardware: str = "", today: dt.date | None = None) -> Registered:
    """Register ``name``: new Ed25519 key (into the secrets dir), free addresses, node file."""
    base = Path(root)
    files = load_registry(base)
    if (message := CHECKS["hostname_label"](name)) is not None:
        raise RegistryError(f"{name!r}: the node name {message}")
    if name in files.nodes:
        raise RegistryError(f"{files.nodes[name].path}: the name {name!r} is already taken; "
                            "choose another name")
    secrets_dir = Path(secrets) if secrets else default_secrets_dir(base)
    _refuse_secrets_inside(base, secrets_dir)
    key_file = secrets_dir / f"{name}.key"
    if key_file.exists():
        raise RegistryError(f"{key_file}: a key for {name!r} already exists; move it away if "
                            "it is left over from an earlier attempt")
    community = files.community.data  # type: ignore[union-attr]
    used = [n.data for n in files.nodes.values()]
    identity = Identity.generate()
    record: dict[str, Any] = {
        "name": name, "id": str(uuid.uuid4()), "status": "active",
        "public_key": identity.public_key,
        "mesh_address": next_mesh_address(community["mesh_range"],
                                          [n["mesh_address"] for n in used]),
        "client_subnet": next_client_subnet(community["client_range"],
                                            community.get("client_prefix", 24),
                                            [n["client_subnet"] for n in used]),
        "owner": owner, "hardware": hardware, "installed": today or dt.date.today(),
    }
    if location is not None:
        record["location"] = {"lat": location[0], "lon": location[1]}
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ensure_roaming_secret(secrets_dir)
    ensure_mesh_key(secrets_dir)
    save_identity(identity, key_file)
    try:
        write_node(base, record)
    except BaseException:
        key_file.unlink(missing_ok=True)
        raise
    return Registered(record, key_file)


def revoke_node(root: str | Path, name: str, *, now: dt.datetime | None = None
                ) -> dict[str, Any]:
    """Mark ``name`` revoked: its key stops counting once a new snapshot is signed."""
    base = Path(root)
    files = load_registry(base)
    if name not in files.nodes:
        raise RegistryError(f"{base / NODES_DIR}: no node named {name!r} "
                            "(see 'meshhub-provision registry list')")
    record = dict(files.nodes[name].data)
    if record["status"] == "revoked":
        raise RegistryError(f"{files.nodes[name].path}: {name!r} is already revoked")
    record["status"] = "revoked"
    record["revoked_at"] = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    write_node(base, record)
    return record


def parse_location(text: str) -> tuple[float, float]:
    """``"LAT,LON"`` as two numbers; raise RegistryError with the expected form."""
    try:
        lat_text, lon_text = text.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise RegistryError(f"--location {text!r}: expected LAT,LON such as "
                            "52.5200,13.4050") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise RegistryError(f"--location {text!r}: latitude must be -90..90 and longitude "
                            "-180..180")
    return lat, lon


def _refuse_secrets_inside(registry: Path, secrets: Path) -> None:
    """Private keys must never end up in the registry or in its git repository."""
    reg = registry.resolve()
    sec = secrets.resolve()
    top = reg
    for candidate in (reg, *reg.parents):
        if (candidate / ".git").exists():
            top = candidate
            break
    if sec in (top, reg) or top in sec.parents or reg in sec.parents:
        raise RegistryError(f"{secrets}: is inside {top} (the registry or its git "
                            "repository); private node keys must stay out of it: pass "
                            "--secrets DIR outside the repository")
