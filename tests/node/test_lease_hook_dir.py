"""dnsmasq's lease hook where programs may run: on a node /run is mounted noexec.

Found in the VM boot test: dnsmasq logged "failed to execute /run/meshhub/lease-hook:
Permission denied", so the gate never heard of a lease and no phone got through.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from node.config import parse_config
from node.mesh import access
from node.mesh.access import dnsmasq_process, lease_hook_dir, mounted_noexec
from tests.conftest import require_root


def node_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_config(
        '[node]\nname = "elm"\n[mesh]\naddress = "10.42.0.7"\n[clients]\n'
        'subnet = "10.64.7.0/24"\n[gate]\nenabled = true\n'
        f'socket = "{tmp_path / "run" / "gate.sock"}"\n'
        f'[agent]\nrun_dir = "{tmp_path / "run"}"\n[update]\nroot = "{tmp_path / "opt"}"\n')


def test_the_hook_stays_in_the_runtime_folder_where_programs_may_run(tmp_path: Path) -> None:
    cfg = node_config(tmp_path)
    assert lease_hook_dir(cfg, noexec=lambda _folder: False) == tmp_path / "run"


def test_on_a_noexec_runtime_folder_the_agent_writes_the_hook_under_its_software(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = node_config(tmp_path)
    run_dir = tmp_path / "run"
    monkeypatch.setattr(access, "mounted_noexec", lambda folder: folder == run_dir)
    process = dnsmasq_process(cfg)
    assert process.prepare is not None
    process.prepare()
    hook = tmp_path / "opt" / "run" / "lease-hook"
    assert hook.stat().st_mode & 0o777 == 0o755
    assert "-m node.gate.leases --socket" in hook.read_text()
    conf = (run_dir / "dnsmasq.conf").read_text()
    assert f"dhcp-script={hook}\n" in conf
    assert not (run_dir / "lease-hook").exists()


def test_a_noexec_mount_is_recognised(tmp_path: Path) -> None:
    require_root()
    folder = tmp_path / "noexec"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=1m", "tmpfs", str(folder)],
                   check=True)
    try:
        assert mounted_noexec(folder)
        assert mounted_noexec(folder / "not" / "made" / "yet")  # its nearest parent's
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert mounted_noexec(folder) == mounted_noexec(tmp_path)  # unmounted: as its parent
