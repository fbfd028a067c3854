"""hostapd's configuration: the open access point residents join.

Open (no passphrase: residents must be able to join without help), client isolation
on (``ap_isolate``: phones cannot reach each other over the radio; the gate also
drops it in the kernel), country code set so the kernel applies that country's
limits, 802.11d beacons so phones learn them too.
"""

from __future__ import annotations

from node.config import NodeConfig
from node.net._header import header
from node.net.render_mesh import BEACON_INTERVAL_TU

#: Every key this renderer may write; tests check the output against it.
HOSTAPD_KEYS: frozenset[str] = frozenset({
    "interface", "driver", "ctrl_interface", "ssid2", "utf8_ssid",
    "country_code", "ieee80211d", "hw_mode", "channel", "ieee80211n", "wmm_enabled",
    "auth_algs", "wpa", "ap_isolate", "ignore_broadcast_ssid", "logger_syslog",
    "logger_syslog_level", "beacon_int",
})

CTRL_DIR = "/run/hostapd"


def hostapd_string(text: str) -> str:
    """``text`` as a hostapd ``P"..."`` printf-escaped string (any byte is safe in it)."""
    out = []
    for char in text:
        if char in '\\"':
            out.append("\\" + char)
        elif char.isprintable() and char.isascii():
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
    return 'P"' + "".join(out) + '"'


def render_hostapd(cfg: NodeConfig, ctrl_dir: str = CTRL_DIR) -> str:
    """The text of ``hostapd.conf`` for the residents' access point; ``ctrl_dir`` is
    where hostapd opens its control socket (``hostapd_cli -p DIR``)."""
    wifi = cfg.wifi
    lines = [
        header(cfg, "hostapd: the open access point for residents"),
        f"interface={wifi.ap_interface}",
        "driver=nl80211",
        # No ctrl_interface_group: hostapd would chown its socket folder to that group, and
        # on a node it runs as the agent's user (no CAP_CHOWN), where that fails and hostapd
        # exits ("lchown[ctrl_interface]: Operation not permitted"): the folder keeps the
        # agent's own group.
        f"ctrl_interface={ctrl_dir}",
        "logger_syslog=-1",
        "logger_syslog_level=2",
        "",
        "# The network residents see (printf-escaped so any name is safe).",
        f"ssid2={hostapd_string(wifi.ssid)}",
        "utf8_ssid=1",
        "ignore_broadcast_ssid=0",
        "",
        "# Radio: the country decides legal channels and power.",
        f"country_code={wifi.country}",
        "ieee80211d=1",
        f"hw_mode={wifi.hw_mode}",
        f"channel={wifi.channel}",
        "# The mesh point on the same radio beacons at this interval too.",
        f"beacon_int={BEACON_INTERVAL_TU}",
        "ieee80211n=1",
        "wmm_enabled=1",
        "",
        "# Open network: the captive gate, not a passphrase, decides who gets through.",
        "auth_algs=1",
        "wpa=0",
        f"ap_isolate={1 if wifi.client_isolation else 0}",
    ]
    return "\n".join(lines) + "\n"
