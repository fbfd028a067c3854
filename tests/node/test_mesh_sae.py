"""The SAE mesh link's pieces on their own: the key, the rendered wpa_supplicant file, the
commands and the agent's daemon. That SAE keeps a keyless radio out is shown on simulated
radios (tests/lab/test_radio_lab.py, in the virtual machine)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from node.config import parse_config
from node.errors import ConfigError
from node.mesh.link import mesh_link_daemons
from node.net.addressing import address_plan
from node.net.mesh_sae import key_path, load_key, render_mesh_supplicant
from node.net.render_mesh import mesh_commands
from node.net.validate import network_problems


def config(tmp_path: Path, security: str = "sae", mode: str = "802.11s",  # type: ignore[no-untyped-def]
           auto_peer: bool = True):
    return parse_config(f'[node]\nname = "elm"\ndata_dir = "{tmp_path}"\n'
                        f'[mesh]\naddress = "10.42.0.7"\nmesh_id = "Elm \\"mesh\\""\n'
                        f'mode = "{mode}"\nsecurity = "{security}"\n'
                        f'auto_peer = {str(auto_peer).lower()}\n'
                        f'[agent]\nrun_dir = "{tmp_path / "run"}"\n')


def test_the_key_is_64_hex_digits_and_a_bad_one_says_what_to_do(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    path = key_path(cfg)
    assert path == tmp_path / "mesh.key"
    with pytest.raises(ConfigError, match=r"no mesh key; copy the community's mesh\.key"):
        load_key(path)
    path.write_text("not a key\n")
    with pytest.raises(ConfigError, match="must be 64 hex digits"):
        load_key(path)
    key = secrets.token_hex(32)
    path.write_text(key.upper() + "\n")
    assert load_key(path) == key


def test_the_supplicant_joins_with_sae_on_the_mesh_channel(tmp_path: Path) -> None:
    key = secrets.token_hex(32)
    text = render_mesh_supplicant(config(tmp_path), key, "/run/x", 6)
    lines = {line.strip() for line in text.splitlines()}
    assert {"mode=5", "key_mgmt=SAE", f'sae_password="{key}"', "ieee80211w=2",
            "frequency=2437", "user_mpm=1", "mesh_fwding=0", "beacon_int=100",
            "ctrl_interface=/run/x"} <= lines
    # The mesh ID in hex: a quote in it cannot end the string and add a line.
    assert "ssid=" + b'Elm "mesh"'.hex() in lines


def test_without_auto_peer_the_node_opens_no_peer_link_itself(tmp_path: Path) -> None:
    """mesh.auto_peer = false (the radio lab's nodes): wpa_supplicant's no_auto_peer with
    SAE, the kernel's mesh_auto_open_plinks=0 for an open mesh; neither by default."""
    key = secrets.token_hex(32)
    assert "no_auto_peer" not in render_mesh_supplicant(config(tmp_path), key, "/run/x", 1)
    text = render_mesh_supplicant(config(tmp_path, auto_peer=False), key, "/run/x", 1)
    network = text.split("network={", 1)[1]
    assert "\tno_auto_peer=1\n" in network and network.rstrip().endswith("}")
    for auto_peer in (True, False):
        cfg = config(tmp_path, "open", auto_peer=auto_peer)
        join = next(c for c in mesh_commands(cfg, address_plan(cfg)) if c[3:5] == ("mesh", "join"))
        assert ("mesh_auto_open_plinks=0" in join) is not auto_peer, join


def test_with_sae_iw_creates_the_mesh_point_but_does_not_join(tmp_path: Path) -> None:
    for security, joins in (("sae", False), ("open", True)):
        cfg = config(tmp_path, security)
        commands = mesh_commands(cfg, address_plan(cfg))
        assert ("iw", "phy", "phy0", "interface", "add", "mesh0", "type", "mp") in commands
        assert any(c[:4] == ("iw", "dev", "mesh0", "mesh") for c in commands) is joins


def test_sae_needs_80211s(tmp_path: Path) -> None:
    assert any(p.startswith("mesh.security: 'sae' needs mesh.mode = '802.11s'")
               for p in network_problems(config(tmp_path, mode="ibss")))
    assert not network_problems(config(tmp_path, security="open", mode="ibss"))


def test_the_agent_runs_wpa_supplicant_only_for_sae_on_a_radio(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sys_root = tmp_path / "sys"
    (sys_root / "class" / "net" / "mesh0" / "phy80211").mkdir(parents=True)
    assert mesh_link_daemons(config(tmp_path, "open"), sys_root) == []
    assert mesh_link_daemons(config(tmp_path), tmp_path / "no-sys") == []  # a cable
    with caplog.at_level(logging.ERROR):
        assert mesh_link_daemons(config(tmp_path), sys_root) == []  # no key yet
    assert "mesh link: not started" in caplog.text and "mesh.key" in caplog.text
    key = secrets.token_hex(32)
    (tmp_path / "mesh.key").write_text(key + "\n")
    (daemon,) = mesh_link_daemons(config(tmp_path), sys_root)
    assert daemon.argv[:5] == ["wpa_supplicant", "-D", "nl80211", "-i", "mesh0"]
    assert daemon.prepare is not None
    daemon.prepare()
    conf = tmp_path / "run" / "wpa_supplicant-mesh.conf"
    assert conf.stat().st_mode & 0o777 == 0o600  # it holds the key
    assert f'sae_password="{key}"' in conf.read_text()
