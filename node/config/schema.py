"""The ``node.toml`` schema: every key declared once, with type, default and help.

This module is the single source of truth for the node's configuration.
``docs/node-toml.md`` is checked against it by the test suite, and
``meshhub config show`` prints it with effective values.  Other packages
(``portal``, ``provisioning``) import it; nobody keeps a copy.

To add a key: append a :class:`Setting` to :data:`SETTINGS` in its section,
then document it in ``docs/node-toml.md`` (the tests tell you if you forget).
"""

from __future__ import annotations

import builtins
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from node.frozen import frozen

Check = Callable[[Any], "str | None"]


@frozen
class Setting:
    """One key of ``node.toml``: where it lives, what it holds and why it exists."""

    section: str
    name: str
    type: builtins.type
    default: Any
    help: str
    item_type: builtins.type | None = None  #: element type when ``type`` is ``list``
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    check: Check | None = None  #: extra check, returns a message or ``None``

    @property
    def key(self) -> str:
        """The dotted name, ``section.name``, used in messages and docs."""
        return f"{self.section}.{self.name}"

    def describe_type(self) -> str:
        """A short human description of the expected type (for messages and docs)."""
        names = {str: "string", int: "integer", float: "number", bool: "true/false", list: "list"}
        text = names.get(self.type, self.type.__name__)
        if self.type is list and self.item_type is not None:
            text = f"list of {names.get(self.item_type, self.item_type.__name__)}s"
        return text


def _hostname_label(value: Any) -> str | None:
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", str(value)):
        return "must be a host name: lower-case letters, digits and '-', 1-63 characters"
    return None


def _device_cap(value: Any) -> str | None:
    if value and int(value) < DEVICE_CAP_MIN_KBIT:
        return (f"must be 0 (no cap) or at least {DEVICE_CAP_MIN_KBIT} kbit/s: less leaves a "
                "phone unable to load a page")
    return None


#: The smallest per-device cap (kbit/s) a node accepts.
DEVICE_CAP_MIN_KBIT = 64


def _language_tag(value: Any) -> str | None:
    if not re.fullmatch(r"[a-z]{2,3}(?:_[A-Z]{2})?", str(value)):
        return "must be a language code such as 'en', 'ar' or 'pt_BR'"
    return None


def _ed25519_hex(value: Any) -> str | None:
    if not re.fullmatch(r"[0-9a-f]{64}", str(value)):
        return "must be an Ed25519 public key: 64 lower-case hex digits"
    return None


def _ipv4_network(value: Any) -> str | None:
    try:
        ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        return f"must be an IPv4 network such as 10.42.0.0/16 ({exc})"
    return None


def _uplink_target(value: Any) -> str | None:
    host, sep, port = str(value).rpartition(":")
    if sep and port.isdigit() and 1 <= int(port) <= 65535 and _ipv4_address(host) is None:
        return None
    return "must be an IPv4 address and a TCP port, such as '192.0.2.1:80'"


def _ipv4_address(value: Any) -> str | None:
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return "must be an IPv4 address such as 10.42.0.1"
    return None


def _country(value: Any) -> str | None:
    if not re.fullmatch(r"[A-Z]{2}", str(value)):
        return "must be a two-letter ISO 3166 country code in capitals, such as 'GB' or 'DE'"
    return None


def parse_coordinates(value: str) -> tuple[float, float] | None:
    """``'51.5072, -0.1276'`` -> ``(51.5072, -0.1276)``; ``''`` -> ``None``; ValueError if bad."""
    text = str(value).strip()
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise ValueError("expected two numbers separated by a comma")
    latitude, longitude = float(parts[0]), float(parts[1])
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValueError("latitude must be within -90..90 and longitude within -180..180")
    return latitude, longitude


def _coordinates(value: Any) -> str | None:
    try:
        parse_coordinates(value)
    except ValueError:
        return ("must be 'latitude, longitude' in decimal degrees, such as "
                "'51.5072, -0.1276', or empty")
    return None


SETTINGS: tuple[Setting, ...] = (
    # --- [node] -------------------------------------------------------------
    Setting("node", "name", str, "meshhub-node",
            "This node's name on the mesh: a host name (letters, digits, '-').",
            check=_hostname_label),
    Setting("node", "data_dir", str, "/var/lib/meshhub",
            "Directory for the node's database, identity key, secrets and library files."),
    Setting("node", "community", str, "Our Neighbourhood",
            "The community's name, shown in page titles and the 'about' page."),
    Setting("node", "location", str, "",
            "Where the node stands, for people (e.g. 'Library roof, Elm Street')."),
    Setting("node", "coordinates", str, "",
            "Where the node stands on a map, as 'latitude, longitude' in decimal degrees "
            "(e.g. '51.5072, -0.1276', as copied from a map); places the node on the "
            "technicians' mesh map. Empty: the map lays the node out by itself.",
            check=_coordinates),
    # --- [portal] -----------------------------------------------------------
    Setting("portal", "listen", str, "127.0.0.1",
            "Address the portal's WSGI server listens on (nginx proxies to it).",
            check=_ipv4_address),
    Setting("portal", "port", int, 8080, "TCP port of the portal's WSGI server.",
            minimum=1, maximum=65535),
    # 2: measured as fast as 4 on the residents' mixed load (the GIL serialises the
    # app's Python), 2 MB less peak memory (docs/serving.md, "Memory").
    Setting("portal", "threads", int, 2, "Worker threads of the WSGI server.",
            minimum=1, maximum=64),
    Setting("portal", "languages", list, ["en", "ar", "es"],
            "Interface languages offered to residents, in menu order.",
            item_type=str),
    Setting("portal", "default_language", str, "en",
            "Language used when the reader's browser asks for none that is offered.",
            check=_language_tag),
    Setting("portal", "page_size", int, 20, "Items per page in listings and the library.",
            minimum=5, maximum=100),
    Setting("portal", "upload_max_mb", int, 200,
            "Largest library upload accepted, in MiB (ZIM archives and videos may need more).",
            minimum=1, maximum=65536),
    Setting("portal", "library_quota_mb", int, 8192,
            "Disk space the library may use on this node, in MiB.", minimum=16),
    Setting("portal", "contact", list, [],
            "How residents reach the organisers, shown on the hub's Contact page: one line "
            "each, e.g. 'Elm Street Residents: Tuesdays 18:00-20:00 at the library'. Empty: "
            "the page points to the node's location.",
            item_type=str),
    Setting("portal", "urgent_notice_hours", int, 48,
            "Hours an urgent notice stays up when it is posted (or made urgent) without an "
            "expiry, so its red banner cannot stay on every page forever.",
            minimum=1, maximum=8760),
    Setting("portal", "behind_proxy", bool, False,
            "True when nginx (or another proxy) is in front: trust one X-Forwarded-For hop."),
    Setting("portal", "cache_seconds", int, 5,
            "How long anonymous pages may be cached by the front (nginx micro-cache).",
            minimum=0, maximum=3600),
    # --- [library] (library files and ZIM archives; node/library) -----------
    Setting("library", "zim_open_max", int, 4,
            "ZIM archives kept open at once for browsing and search; memory grows with "
            "this number, not with the archives' size (a few MiB each).",
            minimum=1, maximum=64),
    Setting("library", "zim_cluster_cache_mb", int, 32,
            "Memory for decompressed ZIM clusters, shared by all open archives, in MiB; "
            "larger is faster for popular articles, smaller suits a 512 MB node.",
            minimum=1, maximum=1024),
    # --- [privacy] ----------------------------------------------------------
    Setting("privacy", "submission_retention_days", int, 30,
            "Days a resident's submission (approved, rejected or pending) keeps its text "
            "in the moderation queue before it is erased.", minimum=1, maximum=3650),
    Setting("privacy", "audit_retention_days", int, 365,
            "Days the audit page shows organisers' actions for.", minimum=1, maximum=36500),
    # --- [organisers] -------------------------------------------------------
    Setting("organisers", "signin_max_attempts", int, 5,
            "Failed sign-ins allowed per account and per client before a pause.",
            minimum=1, maximum=100),
    Setting("organisers", "signin_window_minutes", int, 15,
            "Window over which failed sign-ins are counted, and the pause after too many.",
            minimum=1, maximum=1440),
    Setting("organisers", "session_hours", int, 12,
            "Hours an organiser stays signed in without activity.", minimum=1, maximum=720),
    Setting("organisers", "session_max_hours", int, 72,
            "Hours after signing in when a session ends however active it was.",
            minimum=1, maximum=8760),
    Setting("organisers", "reauth_minutes", int, 15,
            "Minutes after typing their password during which an admin may manage accounts, "
            "network access and updates without typing it again.", minimum=1, maximum=1440),
    # --- [trust] ------------------------------------------------------------
    Setting("trust", "node_keys", list, [],
            "Public keys (64 hex digits) of other nodes whose entries this node accepts, "
            "until the community registry is installed.", item_type=str, check=None),
    # --- [wifi] (residents' access point; node/net renders hostapd) ---------
    Setting("wifi", "ssid", str, "Neighbourhood Wi-Fi",
            "Name of the open Wi-Fi network residents join (1-32 bytes of UTF-8)."),
    Setting("wifi", "country", str, "DE",
            "Country where the node stands (ISO 3166, e.g. 'GB'): decides the legal channels "
            "and transmit power. Set it to where the node really is.", check=_country),
    Setting("wifi", "channel", int, 1,
            "Radio channel of the access point (and of the mesh unless mesh.channel is set).",
            minimum=1, maximum=196),
    Setting("wifi", "hw_mode", str, "g", "Band: 'g' for 2.4 GHz, 'a' for 5 GHz.",
            choices=("g", "a")),
    Setting("wifi", "ap_interface", str, "wlan0",
            "Network interface of the access point residents join."),
    Setting("wifi", "client_isolation", bool, True,
            "Stop residents' devices from talking to each other over the radio (ap_isolate)."),
    # --- [mesh] (node-to-node links; node/net renders the mesh and babeld) --
    Setting("mesh", "interface", str, "mesh0",
            "Radio interface of the mesh link to other nodes (created on mesh.phy)."),
    Setting("mesh", "phy", str, "phy0", "Radio (iw phy name) the mesh interface is created on."),
    Setting("mesh", "mode", str, "802.11s",
            "Mesh link type: '802.11s' mesh point, or 'ibss' (ad-hoc) where the radio's "
            "driver lacks 802.11s.", choices=("802.11s", "ibss")),
    Setting("mesh", "mesh_id", str, "meshhub",
            "Mesh ID (802.11s) or IBSS SSID shared by every node of the mesh (1-32 bytes)."),
    Setting("mesh", "security", str, "open",
            "Link security between nodes: 'sae' (802.11s with SAE and the community's mesh "
            "key: only nodes holding the key peer, and their frames are encrypted; the "
            "agent runs wpa_supplicant on the mesh point) or 'open' (anyone's radio can "
            "peer; the labs without radios and IBSS).", choices=("open", "sae")),
    Setting("mesh", "auto_peer", bool, True,
            "Open an 802.11s peer link with every node in range (with 'sae': every node "
            "holding the mesh key). false: open none, only answer the nodes that open one "
            "(wpa_supplicant's no_auto_peer; the kernel's mesh_auto_open_plinks=0 for "
            "'open'); links are then opened by hand ('wpa_cli mesh_peer_add MAC'): how the "
            "radio lab draws its topology on one shared medium."),
    Setting("mesh", "key_file", str, "",
            "File holding the community's mesh key (64 hex digits, the same on every node, "
            "never replicated) for mesh.security = 'sae'; empty: node.data_dir/mesh.key."),
    Setting("mesh", "channel", int, 0,
            "Radio channel of the mesh; 0 means the same as wifi.channel (one radio doing "
            "both must use one channel).", minimum=0, maximum=196),
    Setting("mesh", "wired_interfaces", list, [],
            "Ethernet interfaces that also link to other nodes (babeld treats them as wired).",
            item_type=str),
    Setting("mesh", "hello_interval", float, 4.0,
            "Seconds between babeld hellos on the mesh radio (wired links: "
            "mesh.wired_hello_interval).",
            minimum=0.5, maximum=60),
    Setting("mesh", "update_interval", float, 16.0,
            "Seconds between babeld's full routing updates on the mesh radio.",
            minimum=1, maximum=600),
    Setting("mesh", "smoothing_half_life", int, 1,
            "Half-life in seconds of babeld's metric smoothing: a route that comes back "
            "(a gateway's uplink restored) is taken once its smoothed cost falls below the "
            "route in use, after up to about 6 half-lives (babeld's own 4 s kept residents "
            "on a backup gateway for 20-24 s); 0 switches at once, with no damping.",
            minimum=0, maximum=60),
    Setting("mesh", "rxcost", int, 256,
            "babeld link cost of the mesh radio (higher makes routes over it less preferred).",
            minimum=1, maximum=65534),
    Setting("mesh", "wired_hello_interval", float, 4.0,
            "Seconds between babeld hellos on mesh.wired_interfaces (babeld's own default).",
            minimum=0.5, maximum=60),
    Setting("mesh", "wired_rxcost", int, 96,
            "babeld link cost of a wired link to another node (babeld's own default).",
            minimum=1, maximum=65534),
    Setting("mesh", "routing", bool, False,
            "Let the agent run and supervise babeld on the mesh links (true on every node of "
            "a mesh; false on a laptop or a demo)."),
    Setting("mesh", "discovery", bool, False,
            "Let the agent announce this node (zeroconf: _meshhub._tcp, _http._tcp) and find "
            "other nodes on the mesh and client links (true on every node of a mesh)."),
    Setting("mesh", "address", str, "",
            "This node's mesh address (a /32 inside mesh.mesh_range, given by the community "
            "registry); empty derives one from node.name.",
            check=lambda v: None if v == "" else _ipv4_address(v)),
    Setting("mesh", "mesh_range", str, "10.42.0.0/16",
            "The range every node's mesh address comes from (babeld announces routes in it).",
            check=_ipv4_network),
    # --- [clients] (residents' devices; node/net renders dnsmasq) ----------
    Setting("clients", "subnet", str, "",
            "This node's client subnet (one per node, never overlapping another node's); "
            "empty derives a /24 of clients.subnet_pool from the mesh address.",
            check=lambda v: None if v == "" else _ipv4_network(v)),
    Setting("clients", "subnet_pool", str, "10.64.0.0/10",
            "The range every node's client subnet is carved from (the same on every node).",
            check=_ipv4_network),
    Setting("clients", "lease_minutes", int, 60, "DHCP lease time for residents' devices.",
            minimum=2, maximum=10080),
    Setting("clients", "dhcp_range_start", int, 10,
            "First DHCP address, as an offset into the client subnet.", minimum=2),
    Setting("clients", "dhcp_range_end", int, 250,
            "Last DHCP address, as an offset into the client subnet.", minimum=2),
    Setting("clients", "uplink_interface", str, "",
            "Interface towards the internet, or empty when this node has none."),
    Setting("clients", "uplink_check", list, [],
            "Where the agent checks the uplink, as 'IPv4 address:port' reached by TCP through "
            "the uplink alone (an answer or a refusal counts); empty: the uplink counts as "
            "working while it is up with a default route. Used on gateway nodes to decide "
            "whether to offer the mesh a default route (docs/uplink.md).", item_type=str),
    Setting("clients", "uplink_check_seconds", float, 2.0,
            "How often the agent checks the uplink, in seconds.", minimum=0.2, maximum=60),
    Setting("clients", "uplink_check_failures", int, 2,
            "Failed checks in a row before the uplink's default route is withdrawn from the "
            "mesh (and good checks in a row before it is offered again).",
            minimum=1, maximum=20),
    Setting("clients", "uplink_cost", int, 0,
            "What babeld adds to the cost of this node's default route: 0 for a main "
            "uplink; a backup (a metered 4G line) gets more, e.g. 2048, so the mesh uses it "
            "only while no main uplink works (docs/uplink.md).", minimum=0, maximum=60000),
    Setting("clients", "dns_servers", list, [],
            "Resolvers that accepted residents' DNS is forwarded to, reached through the "
            "mesh's default route (the same list on every node, e.g. the provider's public "
            "resolvers). Empty: a gateway forwards to its /etc/resolv.conf and a node without "
            "an uplink answers every name with the portal.", item_type=str),
    Setting("clients", "uplink_upload_kbit", int, 0,
            "Upload speed of the uplink in kbit/s (a little below what the line really "
            "gives), shared fairly among residents with CAKE; 0 turns fairness off.",
            minimum=0, maximum=10_000_000),
    Setting("clients", "uplink_download_kbit", int, 0,
            "Download speed of the uplink in kbit/s, shared fairly among residents with CAKE "
            "on an ifb device; 0 turns fairness off in that direction.",
            minimum=0, maximum=10_000_000),
    Setting("clients", "device_download_kbit", int, 0,
            "Most one resident's device (one address) may download from outside the mesh, "
            "in kbit/s, even when the line is free; 0: no cap. The gate of every node "
            "enforces it for its own residents (docs/uplink.md, 'A cap per device').",
            minimum=0, maximum=10_000_000, check=_device_cap),
    Setting("clients", "device_upload_kbit", int, 0,
            "Most one resident's device may upload to outside the mesh, in kbit/s; 0: no cap.",
            minimum=0, maximum=10_000_000, check=_device_cap),
    Setting("clients", "domain", str, "mesh",
            "Local DNS domain: the hub answers as hub_name.domain and node.name.domain.",
            check=_hostname_label),
    Setting("clients", "hub_name", str, "hub",
            "Host name residents type to reach the hub (with clients.domain: 'hub.mesh').",
            check=_hostname_label),
    Setting("clients", "dhcp", bool, False,
            "Let the agent run dnsmasq (DHCP and DNS for residents) on wifi.ap_interface with "
            "the rendered configuration, and hostapd when that interface is a radio (true on "
            "every node with an access point; false on a laptop or a demo)."),
    # --- [gate] (the captive gate; node/net renders nftables) --------------
    Setting("gate", "allow_minutes", int, 1440,
            "Minutes a resident's device stays let through after accepting the house rules.",
            minimum=1, maximum=43200),
    Setting("gate", "management_ports", list, [22],
            "TCP ports of this node and the mesh that residents' devices may never reach "
            "(ssh; agent.port is always added).",
            item_type=int),
    Setting("gate", "portal_port", int, 80,
            "TCP port residents reach the portal on (nginx); port-80 traffic is redirected here.",
            minimum=1, maximum=65535),
    Setting("gate", "mode", str, "portal",
            "'portal': residents accept the house rules once; 'open': nobody is asked; "
            "'forced': everyone must accept again (nobody is remembered across a re-apply). "
            "Organisers can override it on one node from the admin page.",
            choices=("portal", "open", "forced")),
    Setting("gate", "enabled", bool, False,
            "Run the gate's control socket in the agent (a node with an access point; "
            "needs root or CAP_NET_ADMIN). The portal asks it to let devices through."),
    Setting("gate", "socket", str, "/run/meshhub/gate.sock",
            "Unix socket where the portal asks the gate (see docs/captive.md)."),
    Setting("gate", "portal_user", str, "meshhub",
            "The user the portal runs as: the only one besides root who may use the socket."),
    Setting("gate", "socket_group", str, "",
            "Group owning the socket (mode 0660); empty means portal_user's primary group."),
    # --- [roam] (accept once, roam the mesh; node/roam, docs/captive.md) -------
    Setting("roam", "enabled", bool, False,
            "Let phones accepted on another node through here for the rest of their "
            "acceptance, and tell the other nodes about phones accepted here; only keyed, "
            "expiring hashes of MAC addresses leave the node (needs gate.enabled and the "
            "community's roaming secret)."),
    Setting("roam", "secret_file", str, "",
            "File holding the community's roaming secret (64 hex digits, the same on every "
            "node, never replicated); empty: node.data_dir/roaming.secret."),
    # --- [health] (node/health: samples, history, alerts) -------------------
    Setting("health", "interval_seconds", int, 30,
            "Seconds between two health samples.", minimum=5, maximum=3600),
    Setting("health", "history_days", int, 7,
            "Days of samples kept on disk (they survive a reboot).", minimum=1, maximum=90),
    Setting("health", "write_interval_seconds", int, 60,
            "Least time between two writes of the history to the SD card (samples are "
            "batched in memory meanwhile).", minimum=10, maximum=3600),
    Setting("health", "disk_full_percent", int, 90,
            "Alert when the data partition is at least this full.", minimum=50, maximum=100),
    Setting("health", "too_hot_celsius", float, 75.0,
            "Alert when the processor is at least this hot (Raspberry Pi boards slow "
            "down from 80-85 °C).", minimum=30, maximum=110),
    Setting("health", "low_voltage_volts", float, 0.0,
            "Alert when a power monitor's bus voltage is below this; 0 turns it off "
            "(e.g. 11.8 for a 12 V lead-acid battery).", minimum=0, maximum=60),
    Setting("health", "link_degraded_cost", int, 1024,
            "Alert when babeld's cost of a link to a neighbour is at least this.",
            minimum=1, maximum=65535),
    Setting("health", "node_lost_seconds", int, 60,
            "Alert when a neighbour heard before has had no usable link for this long.",
            minimum=5, maximum=86400),
    Setting("health", "leases_file", str, "",
            "dnsmasq's leases file, counted for the number of residents' devices; empty "
            "means the one the node's dnsmasq writes (node.data_dir/dnsmasq.leases)."),
    Setting("health", "services", list, ["nginx", "dnsmasq", "hostapd", "babeld"],
            "systemd units whose up/down state is reported and alerted on.", item_type=str),
    # --- [agent] (the node agent and its HTTP API) --------------------------
    Setting("agent", "listen", str, "127.0.0.1",
            "Address the agent's HTTP API (/metrics, /api/health) listens on; use the mesh "
            "address to let a Prometheus elsewhere on the mesh scrape it.",
            check=_ipv4_address),
    Setting("agent", "port", int, 9180, "TCP port of the agent's HTTP API.",
            minimum=1, maximum=65535),
    Setting("agent", "run_dir", str, "/run/meshhub",
            "Directory for the agent's runtime files: babeld's configuration, monitoring "
            "socket, pid file and the capped logs of the daemons it supervises."),
    Setting("agent", "client_keys", list, [],
            "Public keys (64 hex digits) of technicians' tools allowed to call this agent's "
            "sync and update APIs, besides the registered nodes (docs/security.md).",
            item_type=str, check=None),
    Setting("agent", "peers", list, [],
            "Other nodes' agents ('host' or 'host:port') for 'meshhub status --mesh' and "
            "'meshhub prometheus-config', until mesh discovery lists them.", item_type=str),
    # --- [hardware] (hardware/: I2C sensors, status LED, setup button) -------
    Setting("hardware", "i2c_bus", int, 1,
            "I2C bus the sensors are on (/dev/i2c-N; 1 on a Raspberry Pi's GPIO header).",
            minimum=0, maximum=255),
    Setting("hardware", "power_monitor", str, "none",
            "Power monitor fitted: 'ina219', 'ina226' or 'none'.",
            choices=("none", "ina219", "ina226")),
    Setting("hardware", "ina_address", int, 64,
            "I2C address of the power monitor (64-79, i.e. 0x40-0x4F; TOML accepts 0x40).",
            minimum=0x40, maximum=0x4F),
    Setting("hardware", "ina_shunt_ohms", float, 0.1,
            "Resistance of the power monitor's shunt resistor in ohms (0.1 on most INA219 "
            "boards; read the resistor's marking: R100 = 0.1).", minimum=0.0001, maximum=10),
    Setting("hardware", "ina_max_amps", float, 2.0,
            "Largest current expected through the shunt, in amperes (sets the resolution); "
            "with a 0.1 ohm shunt at most 3.2 on an INA219 and 0.8 on an INA226.",
            minimum=0.001, maximum=100),
    Setting("hardware", "bme280_address", int, 0,
            "I2C address of a BME280 environment sensor: 118 (0x76) or 119 (0x77); 0 when "
            "none is fitted.", choices=(0, 0x76, 0x77)),
    Setting("hardware", "led_pin", str, "",
            "GPIO pin of the status LED, e.g. 'GPIO17' (header pin 11); empty when none.",
            check=lambda v: None if v == "" or re.fullmatch(r"(GPIO|BOARD)\d{1,2}", v)
            else "must be empty or a pin name such as 'GPIO17' or 'BOARD11'"),
    Setting("hardware", "button_pin", str, "",
            "GPIO pin of the setup button, wired to ground, e.g. 'GPIO27' (header pin 13); "
            "empty when none.",
            check=lambda v: None if v == "" or re.fullmatch(r"(GPIO|BOARD)\d{1,2}", v)
            else "must be empty or a pin name such as 'GPIO27' or 'BOARD13'"),
    Setting("hardware", "button_hold_seconds", float, 5.0,
            "Seconds the setup button must be held to put the node into setup mode.",
            minimum=2, maximum=30),
    # --- [sync] (replication between nodes; node/sync, docs/replication.md) --
    Setting("sync", "interval_seconds", int, 60,
            "Seconds between periodic sync rounds with every neighbour (repairs anything a "
            "push missed); posts travel at once by push, not by this timer.",
            minimum=1, maximum=86400),
    Setting("sync", "jitter_ratio", float, 0.2,
            "Random spread of the periodic round, as a fraction of interval_seconds, so that "
            "neighbours do not all sync at the same moment.", minimum=0, maximum=0.9),
    Setting("sync", "peers", list, [],
            "Base URLs of other nodes' agents to sync with always (e.g. "
            "'http://10.42.1.1:9180'), besides the neighbours the mesh discovers.",
            item_type=str),
    Setting("sync", "max_page_entries", int, 500,
            "Most entries asked for (and served) per sync request.", minimum=1, maximum=5000),
    Setting("sync", "max_request_bytes", int, 262144,
            "Largest sync request body this node accepts, in bytes (a vector of many nodes "
            "needs about 80 bytes per node).", minimum=4096, maximum=16777216),
    Setting("sync", "push", bool, True,
            "Tell neighbours at once when this node has new entries, so that posts cross the "
            "mesh in seconds; false leaves only the periodic rounds."),
    Setting("sync", "backoff_max_seconds", int, 300,
            "Longest wait before trying again a neighbour that failed or sent bad data "
            "(the wait doubles per failure, starting at 2 seconds).", minimum=1, maximum=86400),
    # --- [update] (signed releases and the autoupdater; node/update, docs/updates.md) --
    Setting("update", "enabled", bool, False,
            "Let the agent install signed releases on its own (staged, rolled back if the node "
            "comes up unhealthy); false pauses updates on this node."),
    Setting("update", "check_time", str, "04:00",
            "Local time of day (HH:MM) when the agent looks for a new release.",
            check=lambda v: None if re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", str(v))
            else "must be a time of day such as '04:00'"),
    Setting("update", "jitter_minutes", int, 60,
            "Random delay after check_time, so that the nodes of a mesh do not all look at "
            "once.", minimum=0, maximum=720),
    Setting("update", "mirrors", list, [],
            "Base URLs of agents or web servers serving releases at /update/v1/ (e.g. "
            "'http://10.42.1.1:9180'), besides the neighbours the mesh discovers.",
            item_type=str),
    Setting("update", "health_window_seconds", int, 300,
            "How long a new version has to pass its health check (agent up, portal answers, "
            "babeld neighbours back) before the node switches back.", minimum=30, maximum=3600),
    Setting("update", "root", str, "/opt/meshhub",
            "Folder holding the versioned virtual environments (venvs/), the 'current' link, "
            "the releases this node mirrors and the update state."),
    Setting("update", "install_command", list, [],
            "Command installing a release instead of 'python3 -m venv' + 'pip install "
            "--no-index'; {venv}, {wheels} and {version} are filled in. Empty: pip.",
            item_type=str),
    Setting("update", "restart_command", list, [],
            "Command restarting the portal after a switch, instead of systemctl (which also "
            "restarts the agent); it must not stop the agent. Empty: systemctl.",
            item_type=str),
)

#: Checks applied to each element of list settings, by key.
ITEM_CHECKS: dict[str, Check] = {
    "trust.node_keys": _ed25519_hex,
    "agent.client_keys": _ed25519_hex,
    "portal.languages": _language_tag,
    "clients.uplink_check": _uplink_target,
    "clients.dns_servers": _ipv4_address,
    "sync.peers": lambda v: None if re.fullmatch(r"http://[^\s/?#@]+/?", str(v))
    else "must be an agent's base URL such as 'http://10.42.1.1:9180'",
}

#: Helpers other modules may reuse when they declare their own keys.
CHECKS: dict[str, Check] = {
    "hostname_label": _hostname_label,
    "language_tag": _language_tag,
    "ed25519_hex": _ed25519_hex,
    "ipv4_network": _ipv4_network,
    "ipv4_address": _ipv4_address,
    "country": _country,
}


def settings_by_key() -> dict[str, Setting]:
    """All settings indexed by their dotted key."""
    return {s.key: s for s in SETTINGS}


def sections() -> list[str]:
    """Section names in declaration order."""
    seen: list[str] = []
    for setting in SETTINGS:
        if setting.section not in seen:
            seen.append(setting.section)
    return seen
