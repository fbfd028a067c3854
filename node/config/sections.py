"""The typed shape of node.toml's sections, for type checkers.

Written by scripts/config_sections.py from node/config/schema.py (do not edit);
:class:`node.config.NodeConfig` has one attribute per section, e.g.
``cfg.portal.upload_max_mb`` (an ``int``).
"""

from __future__ import annotations

from typing import Protocol


class NodeSection(Protocol):
    """``[node]``."""

    name: str
    data_dir: str
    community: str
    location: str
    coordinates: str


class PortalSection(Protocol):
    """``[portal]``."""

    listen: str
    port: int
    threads: int
    languages: list[str]
    default_language: str
    page_size: int
    upload_max_mb: int
    library_quota_mb: int
    contact: list[str]
    urgent_notice_hours: int
    behind_proxy: bool
    cache_seconds: int


class LibrarySection(Protocol):
    """``[library]``."""

    zim_open_max: int
    zim_cluster_cache_mb: int


class PrivacySection(Protocol):
    """``[privacy]``."""

    submission_retention_days: int
    audit_retention_days: int


class OrganisersSection(Protocol):
    """``[organisers]``."""

    signin_max_attempts: int
    signin_window_minutes: int
    session_hours: int
    session_max_hours: int
    reauth_minutes: int


class TrustSection(Protocol):
    """``[trust]``."""

    node_keys: list[str]


class WifiSection(Protocol):
    """``[wifi]``."""

    ssid: str
    country: str
    channel: int
    hw_mode: str
    ap_interface: str
    client_isolation: bool


class MeshSection(Protocol):
    """``[mesh]``."""

    interface: str
    phy: str
    mode: str
    mesh_id: str
    security: str
    auto_peer: bool
    key_file: str
    channel: int
    wired_interfaces: list[str]
    hello_interval: float
    update_interval: float
    smoothing_half_life: int
    rxcost: int
    wired_hello_interval: float
    wired_rxcost: int
    routing: bool
    discovery: bool
    address: str
    mesh_range: str


class ClientsSection(Protocol):
    """``[clients]``."""

    subnet: str
    subnet_pool: str
    lease_minutes: int
    dhcp_range_start: int
    dhcp_range_end: int
    uplink_interface: str
    uplink_check: list[str]
    uplink_check_seconds: float
    uplink_check_failures: int
    uplink_cost: int
    dns_servers: list[str]
    uplink_upload_kbit: int
    uplink_download_kbit: int
    device_download_kbit: int
    device_upload_kbit: int
    domain: str
    hub_name: str
    dhcp: bool


class GateSection(Protocol):
    """``[gate]``."""

    allow_minutes: int
    management_ports: list[int]
    portal_port: int
    mode: str
    enabled: bool
    socket: str
    portal_user: str
    socket_group: str


class RoamSection(Protocol):
    """``[roam]``."""

    enabled: bool
    secret_file: str


class HealthSection(Protocol):
    """``[health]``."""

    interval_seconds: int
    history_days: int
    write_interval_seconds: int
    disk_full_percent: int
    too_hot_celsius: float
    low_voltage_volts: float
    link_degraded_cost: int
    node_lost_seconds: int
    leases_file: str
    services: list[str]


class AgentSection(Protocol):
    """``[agent]``."""

    listen: str
    port: int
    run_dir: str
    client_keys: list[str]
    peers: list[str]


class HardwareSection(Protocol):
    """``[hardware]``."""

    i2c_bus: int
    power_monitor: str
    ina_address: int
    ina_shunt_ohms: float
    ina_max_amps: float
    bme280_address: int
    led_pin: str
    button_pin: str
    button_hold_seconds: float


class SyncSection(Protocol):
    """``[sync]``."""

    interval_seconds: int
    jitter_ratio: float
    peers: list[str]
    max_page_entries: int
    max_request_bytes: int
    push: bool
    backoff_max_seconds: int


class UpdateSection(Protocol):
    """``[update]``."""

    enabled: bool
    check_time: str
    jitter_minutes: int
    mirrors: list[str]
    health_window_seconds: int
    root: str
    install_command: list[str]
    restart_command: list[str]


class Sections:
    """The sections of node.toml, by name."""

    node: NodeSection
    portal: PortalSection
    library: LibrarySection
    privacy: PrivacySection
    organisers: OrganisersSection
    trust: TrustSection
    wifi: WifiSection
    mesh: MeshSection
    clients: ClientsSection
    gate: GateSection
    roam: RoamSection
    health: HealthSection
    agent: AgentSection
    hardware: HardwareSection
    sync: SyncSection
    update: UpdateSection
