"""``meshhub net plan``: a readable summary, and the files written with --out."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import cli, main


def write_toml(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nname = "elm"\n[mesh]\naddress = "10.42.0.7"\n'
                    '[clients]\nsubnet = "10.64.7.0/24"\n' + extra)
    return path


def test_plan_prints_addresses_files_and_commands(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["-c", str(write_toml(tmp_path)), "net", "plan"])
    assert result.exit_code == 0, result.output
    assert "mesh address    10.42.0.7/32 in 10.42.0.0/16" in result.output
    assert "client subnet   10.64.7.0/24" in result.output
    assert "http://10.64.7.1/api/captive" in result.output
    assert "/etc/meshhub/net/gate.nft" in result.output
    assert "nft -f /etc/meshhub/net/gate.nft" in result.output
    assert not (tmp_path / "out").exists()


def test_plan_out_writes_every_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["-c", str(write_toml(tmp_path)), "net", "plan",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["babeld.conf", "dnsmasq.conf", "gate.nft", "hostapd.conf", "mesh-up.sh"]
    assert (out / "mesh-up.sh").stat().st_mode & 0o111
    assert "table inet meshhub" in (out / "gate.nft").read_text()


def test_plan_refuses_a_bad_network_section_before_writing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = write_toml(tmp_path, '[wifi]\ncountry = "US"\nchannel = 13\n')
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["-c", str(toml), "net", "plan", "--out", str(out)])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("meshhub: error: ")
    assert "wifi.channel: channel 13 is not usable on 2.4 GHz (hw_mode 'g') in US" in err
    assert not out.exists()
