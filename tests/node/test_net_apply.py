"""``meshhub net apply``: idempotent, checked before switching, restored on failure."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import cli
from node.config import parse_config
from node.net import build_plan
from node.net.apply import ApplyError, apply_plan
from tests.conftest import require_root, require_tool

TOML = '[mesh]\naddress = "10.42.0.7"\n[clients]\nsubnet = "10.64.7.0/24"\n'


class Recorder:
    """A runner that records commands and fails the ones named in ``fail``."""

    def __init__(self, fail: str = "") -> None:
        self.fail = fail
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], stdin: str | None) -> tuple[int, str, str]:
        self.calls.append(list(argv))
        if self.fail and self.fail in " ".join(argv):
            return 1, "", f"{argv[0]}: simulated failure"
        return 0, "", ""


def plan_in(tmp_path: Path, extra: str = ""):  # type: ignore[no-untyped-def]
    return build_plan(parse_config(TOML + extra), net_dir=tmp_path / "etc")


def test_second_apply_changes_nothing(tmp_path: Path) -> None:
    runner = Recorder()
    first = apply_plan(plan_in(tmp_path), runner)
    assert len(first.changed) == 5 and not first.unchanged
    assert ["nft", "-c", "-f", str(tmp_path / "etc" / "gate.nft.new")] in runner.calls
    assert any(c[0] == "nft" and c[1] == "-f" for c in runner.calls)
    runner.calls.clear()
    second = apply_plan(plan_in(tmp_path), runner)
    assert not second.changed and len(second.unchanged) == 5 and runner.calls == []


def test_a_file_failing_its_check_changes_nothing(tmp_path: Path) -> None:
    apply_plan(plan_in(tmp_path), Recorder())
    before = (tmp_path / "etc" / "gate.nft").read_text()
    with pytest.raises(ApplyError, match=r"nft -c"):
        apply_plan(plan_in(tmp_path, '[gate]\nallow_minutes = 5\n'), Recorder(fail="nft -c"))
    assert (tmp_path / "etc" / "gate.nft").read_text() == before
    assert not list((tmp_path / "etc").glob("*.new"))


def test_a_failed_command_puts_the_previous_files_back(tmp_path: Path) -> None:
    apply_plan(plan_in(tmp_path), Recorder())
    before = (tmp_path / "etc" / "dnsmasq.conf").read_text()
    runner = Recorder(fail="dnsmasq --conf-file")
    config = parse_config(TOML.replace('subnet = ', 'lease_minutes = 30\nsubnet = '))
    with pytest.raises(ApplyError, match="previous files"):
        apply_plan(build_plan(config, net_dir=tmp_path / "etc"), runner)
    assert (tmp_path / "etc" / "dnsmasq.conf").read_text() == before
    assert ["nft", "-f", str(tmp_path / "etc" / "gate.nft")] in runner.calls


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    report = apply_plan(plan_in(tmp_path), Recorder(), dry_run=True)
    assert report.changed and report.commands and not (tmp_path / "etc").exists()


def test_cli_root_writes_files_and_reports_unchanged(tmp_path: Path) -> None:
    require_tool("nft", "dnsmasq")
    require_root()  # nft -c needs CAP_NET_ADMIN even though it changes nothing
    toml = tmp_path / "node.toml"
    toml.write_text(f'[node]\ndata_dir = "{tmp_path / "data"}"\n' + TOML)
    args = ["-c", str(toml), "net", "apply", "--root", str(tmp_path / "img")]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "img" / "etc" / "meshhub" / "net" / "gate.nft").exists()
    second = CliRunner().invoke(cli, args)
    assert "Nothing changed." in second.output


def test_the_gate_is_applied_inside_a_namespace(tmp_path: Path) -> None:
    require_root()
    require_tool("nft", "ip")
    name = f"mh-apply-{tmp_path.name[-6:]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        def in_namespace(argv: Sequence[str], stdin: str | None) -> tuple[int, str, str]:
            if argv[0] != "nft":
                return 0, "", ""  # interfaces and daemons do not exist here
            done = subprocess.run(["ip", "netns", "exec", name, *argv], capture_output=True,
                                  text=True, check=False, input=stdin, timeout=20)
            return done.returncode, done.stdout, done.stderr
        apply_plan(plan_in(tmp_path), in_namespace)
        listed = subprocess.run(["ip", "netns", "exec", name, "nft", "list", "tables"],
                                capture_output=True, text=True, check=True).stdout
        assert "inet meshhub" in listed
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
