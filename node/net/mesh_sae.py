"""The encrypted mesh link: 802.11s with SAE and the community's mesh key (``mesh.security``).

Every node of a community holds the same **mesh key** (32 random bytes, written as 64 hex
digits): ``meshhub-provision registry register`` makes it once in the secrets folder,
``customise`` puts it on each card, and first boot installs it as
``node.data_dir/mesh.key`` (mode 0600, the agent's user). It never enters the registry,
the store or replication.

With ``mesh.security = "sae"`` the mesh point is not joined with ``iw`` but by
``wpa_supplicant`` in mesh mode (``mode=5``), run by the agent, with ``key_mgmt=SAE``
and the key as SAE password: peer links are authenticated by SAE (a password-authenticated
key exchange: the key itself never crosses the air, and a listener cannot test guesses
offline), the mesh peering protocol is authenticated (AMPE, ``user_mpm=1``), and every
frame between two peers is encrypted with CCMP, management frames protected
(``ieee80211w=2``). A radio without the key gets no peer link, and 802.11s drops every
data frame from a station without one: it can listen to beacons, no more.

Why SAE rather than WireGuard between neighbours: it is the 802.11s standard's own link
security, one daemon (wpa_supplicant, already on every image) and no per-neighbour keys
or addresses to manage, and it keeps a rogue off the link before any IP packet exists.
What it does not do: a node whose key is stolen (a stolen card before first boot, a
compromised node) can peer until the community changes the key on every node; what it
may then do on the mesh is still bounded by the signed requests and signed entries
(docs/security.md).
"""

from __future__ import annotations

from pathlib import Path

from node.config import NodeConfig
from node.hexsecret import read_hex_secret
from node.net._header import header
from node.net.regulatory import frequency_mhz
from node.net.render_mesh import BEACON_INTERVAL_TU

#: The key's file in ``node.data_dir`` when ``mesh.key_file`` is empty.
KEY_FILE_NAME = "mesh.key"


def key_path(cfg: NodeConfig) -> Path:
    """Where this node's mesh key is: ``mesh.key_file``, or ``node.data_dir/mesh.key``."""
    return Path(cfg.mesh.key_file) if cfg.mesh.key_file else Path(cfg.data_dir) / KEY_FILE_NAME


def load_key(path: Path) -> str:
    """The mesh key in ``path`` (64 lower-case hex digits); ConfigError saying what to do."""
    return read_hex_secret(path, "mesh key", "copy the community's mesh.key there "
                           "(meshhub-provision customise does) or set mesh.security = 'open'")


def uses_sae(cfg: NodeConfig) -> bool:
    """Whether the mesh link is an 802.11s mesh point secured with SAE."""
    return cfg.mesh.mode == "802.11s" and cfg.mesh.security == "sae"


def render_mesh_supplicant(cfg: NodeConfig, key: str, ctrl_dir: str, channel: int) -> str:
    """``wpa_supplicant`` configuration joining the mesh on ``channel`` with SAE and ``key``.

    The mesh ID is written in hex (any bytes, nothing to escape); HT20 like the access
    point on the same radio; 802.11s forwarding off, babeld routes. With
    ``mesh.auto_peer = false``, ``no_auto_peer=1``: wpa_supplicant opens no peer link
    itself but answers a node that opens one, and ``wpa_cli mesh_peer_add MAC`` opens one.
    """
    lines = [
        header(cfg, "The encrypted 802.11s mesh link (wpa_supplicant, SAE). SECRET: it holds "
                    "the community's mesh key.").rstrip("\n"),
        f"ctrl_interface={ctrl_dir}",
        "user_mpm=1",  # authenticated mesh peering (AMPE) in wpa_supplicant
        "network={",
        f"\tssid={cfg.mesh.mesh_id.encode('utf-8').hex()}",
        "\tmode=5",
        f"\tfrequency={frequency_mhz(channel)}",
        "\tkey_mgmt=SAE",
        f'\tsae_password="{key}"',
        "\tieee80211w=2",
        "\tpairwise=CCMP",
        "\tgroup=CCMP",
        f"\tbeacon_int={BEACON_INTERVAL_TU}",
        "\tmesh_fwding=0",
        "\tdisable_ht40=1",
        # Open no peer link, answer those opened: links added by hand (mesh.auto_peer).
        *([] if cfg.mesh.auto_peer else ["\tno_auto_peer=1"]),
        "}",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["KEY_FILE_NAME", "key_path", "load_key", "render_mesh_supplicant", "uses_sae"]
