"""The address plan and the checks that refuse a bad network section."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from node.config import defaults, parse_config
from node.errors import ConfigError
from node.net import address_plan, check_network
from node.net.validate import network_problems


def test_explicit_addresses_give_the_plan_the_registry_asked_for() -> None:
    cfg = parse_config('[mesh]\naddress = "10.42.0.7"\n[clients]\nsubnet = "10.64.7.0/24"\n')
    plan = address_plan(cfg)
    assert plan.node_number == 7
    assert plan.mesh_address == IPv4Address("10.42.0.7")
    assert plan.client_subnet == IPv4Network("10.64.7.0/24")
    assert plan.portal_address == IPv4Address("10.64.7.1")
    assert (plan.dhcp_first, plan.dhcp_last) == (IPv4Address("10.64.7.10"),
                                                 IPv4Address("10.64.7.250"))
    assert plan.captive_api_url == "http://10.64.7.1/api/captive"
    assert plan.hub_names == ("hub.mesh", "meshhub-node.mesh")
    assert not plan.mesh_address_derived and not plan.client_subnet_derived


def test_derived_client_subnet_follows_the_node_number() -> None:
    plan = address_plan(parse_config('[mesh]\naddress = "10.42.1.2"\n'))
    assert plan.node_number == 258
    assert plan.client_subnet == IPv4Network("10.65.2.0/24")  # the 258th /24 of 10.64.0.0/10


def test_derived_addresses_are_stable_and_distinct_per_name() -> None:
    plans = [address_plan(parse_config(f'[node]\nname = "node-{i}"\n')) for i in range(40)]
    again = address_plan(parse_config('[node]\nname = "node-0"\n'))
    assert again == plans[0]
    assert len({p.client_subnet for p in plans}) == len(plans)
    for plan in plans:
        assert plan.mesh_address in plan.mesh_range
        assert plan.client_subnet.subnet_of(plan.subnet_pool)
        assert not plan.client_subnet.overlaps(plan.mesh_range)


def test_defaults_are_a_valid_network() -> None:
    assert network_problems(defaults()) == []


@pytest.mark.parametrize(("toml", "key", "reason"), [
    ('[clients]\nsubnet = "10.42.5.0/24"\n', "clients.subnet", "outside clients.subnet_pool"),
    ('[clients]\nsubnet_pool = "10.42.128.0/20"\n', "clients.subnet_pool", "overlaps"),
    ('[mesh]\naddress = "10.9.0.1"\n', "mesh.address", "outside mesh.mesh_range"),
    ('[wifi]\ncountry = "XX"\n', "wifi.country", "not an ISO 3166"),
    ('[wifi]\ncountry = "US"\nchannel = 13\n', "wifi.channel", "channel 13"),
    ('[wifi]\nhw_mode = "a"\nchannel = 100\n', "wifi.channel", "DFS"),
    ('[wifi]\nssid = "' + "x" * 33 + '"\n', "wifi.ssid", "1-32 bytes"),
    ('[wifi]\nssid = "' + "é" * 17 + '"\n', "wifi.ssid", "34 bytes"),
    ('[clients]\ndhcp_range_start = 200\ndhcp_range_end = 100\n', "clients.dhcp_range_start",
     "start <= end"),
    ('[clients]\nuplink_interface = "wlan0"\n', "clients.uplink_interface", "already used"),
    ('[gate]\nmanagement_ports = [80]\n', "gate.management_ports", "portal"),
])
def test_bad_network_sections_are_refused_with_key_and_reason(toml: str, key: str,
                                                              reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_network(parse_config(toml))
    assert any(key in p and reason in p for p in info.value.problems), info.value.problems


def test_5ghz_upper_band_depends_on_the_country() -> None:
    assert network_problems(parse_config('[wifi]\ncountry = "US"\nhw_mode = "a"\n'
                                         'channel = 149\n')) == []
    assert network_problems(parse_config('[wifi]\ncountry = "DE"\nhw_mode = "a"\n'
                                         'channel = 149\n'))
