"""The lab at scale (issue 19): 60 nodes from the command line, and its clear refusals.

The 60-node grid runs in CI (a few minutes on a busy 2-core machine); the 200-node run
is ``bench/scale.py --parts lab200``. The refusals are checked on the functions that
make them, with the machine's figures given, so they hold on any machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench import netlab
from node.cli import cli
from node.errors import ConfigError
from node.lab import MeshLab, lab_namespaces
from node.lab.capacity import check_memory, node_mib, slow_host_warning
from node.lab.lab import LabError
from tests.conftest import require_root, require_tool

#: Seconds a 60-node lab may take to be ready in CI: about a minute on a quiet 2-core
#: machine; generous, because CI shares the machine (the target at 200 nodes is 120 s).
READY_60_SECONDS = 600


def test_too_many_nodes_for_the_memory_are_refused_with_the_estimate() -> None:
    with pytest.raises(ConfigError) as refused:
        check_memory(200, portal=True, available=4000)
    text = str(refused.value)
    assert f"{200 * node_mib(True, False)} MiB" in text  # the estimate
    assert "4000 MiB available" in text
    assert "--no-portal" in text and "--nodes " in text  # what to do
    check_memory(200, portal=False, available=16000)  # fits: no error


def test_a_slow_host_gets_a_warning_that_names_the_hello_interval() -> None:
    text = slow_host_warning(200, 1.0, cpus=2, load=0.5)
    assert text is not None
    assert "hello every 1 s" in text and "load 0.5" in text and "try --hello 4" in text
    assert "use fewer --nodes" in (slow_host_warning(200, 1.0, cpus=2, load=1.9) or "")
    assert slow_host_warning(20, 4.0, cpus=2, load=0.1) is None


def test_a_node_that_never_becomes_ready_is_named_with_its_last_log_line(tmp_path: Path
                                                                        ) -> None:
    from node.lab.lab import LabNode, LabState

    state = LabState("t", str(tmp_path), "line", 1.0,
                     {f"n{i}": LabNode(f"n{i}", i, f"mhl-t-n{i}", f"10.42.0.{i}", "")
                      for i in (1, 2, 3)}, [])
    (tmp_path / "n2").mkdir()
    (tmp_path / "n2" / "agent.log").write_text("starting\nERROR meshhub: the store is damaged\n\n")
    error = MeshLab(state)._not_ready({"n3", "n2"}, "agent", "did not answer within 5 s")
    assert isinstance(error, LabError)
    text = str(error)
    assert "\n" not in text
    assert text.startswith("n2: its agent did not answer within 5 s")
    assert "'ERROR meshhub: the store is damaged'" in text and "1 more: n3" in text
    assert text.endswith(f"read {tmp_path}/n2/agent.log")


@pytest.mark.root
@pytest.mark.timeout(READY_60_SECONDS + 300)
def test_sixty_nodes_come_up_from_the_command_line_and_go(tmp_path: Path) -> None:
    require_root()
    require_tool("ip", "babeld", "dnsmasq", "nft")
    state, lab_id = tmp_path / "lab", netlab.lab_tag()
    runner = CliRunner()
    common = ["--state", str(state)]
    started = time.monotonic()
    try:
        up = runner.invoke(cli, ["lab", "up", "--nodes", "60", "--topology", "grid",
                                 "--hello", "4", "--no-portal", "--wait",
                                 str(READY_60_SECONDS), "--lab", lab_id, *common])
        took = time.monotonic() - started
        assert up.exit_code == 0, f"{up.output}{up.exception}"
        assert "60 nodes, grid" in up.output and "ready in" in up.output
        # Ready means every agent answered and every babeld reached the 59 others.
        assert len(json.loads((state / "lab.json").read_text())["nodes"]) == 60
        status = runner.invoke(cli, ["lab", "status", *common])
        assert status.exit_code == 0
        assert status.output.count("agent up") == 60, status.output[-2000:]
        print(f"60-node grid ready in {took:.1f} s")
    finally:
        runner.invoke(cli, ["lab", "down", *common])
    assert not [ns for ns in lab_namespaces() if ns.startswith(f"mhl-{lab_id}-")]
    assert not state.exists()
