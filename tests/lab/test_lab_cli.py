"""`meshhub lab` from the command line: topologies, clear errors, and a small lab end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bench import netlab
from node.cli import cli
from node.lab import lab_namespaces, links
from tests.conftest import require_root, require_tool


def test_topologies() -> None:
    assert links(4, "line") == [(1, 2), (2, 3), (3, 4)]
    assert links(4, "ring") == [(1, 2), (2, 3), (3, 4), (1, 4)]
    assert links(4, "grid") == [(1, 2), (1, 3), (2, 4), (3, 4)]
    random_links = links(12, "random", seed=7)
    assert random_links == links(12, "random", seed=7)
    reached, frontier = {1}, [1]  # connected: every node reachable from n1
    while frontier:
        here = frontier.pop()
        for a, b in random_links:
            for x, y in ((a, b), (b, a)):
                if x == here and y not in reached:
                    reached.add(y)
                    frontier.append(y)
    assert reached == set(range(1, 13))


def test_commands_on_a_missing_lab_say_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["lab", "status", "--state", str(tmp_path / "none")])
    assert result.exit_code != 0
    assert "meshhub lab up" in str(result.exception)


@pytest.mark.root
def test_up_status_cut_down(tmp_path: Path) -> None:
    require_root()
    require_tool("ip", "babeld", "curl")
    state, lab_id = tmp_path / "lab", netlab.lab_tag()
    runner = CliRunner()
    common = ["--state", str(state)]
    try:
        up = runner.invoke(cli, ["lab", "up", "--nodes", "3", "--no-portal", "--lab", lab_id,
                                 *common])
        assert up.exit_code == 0, up.output
        status = runner.invoke(cli, ["lab", "status", *common])
        assert status.exit_code == 0 and status.output.count("reaches 2/2") == 3, status.output
        cut = runner.invoke(cli, ["lab", "cut", "n1", "n3", *common])
        assert cut.exit_code != 0 and "no link between n1 and n3" in str(cut.exception)
    finally:
        runner.invoke(cli, ["lab", "down", *common])
    assert not [ns for ns in lab_namespaces() if ns.startswith(f"mhl-{lab_id}-")]
    assert not state.exists()


@pytest.mark.root
def test_a_failed_up_stops_the_lab_but_keeps_what_its_error_points_to(tmp_path: Path) -> None:
    require_root()
    require_tool("ip", "babeld", "curl")
    state, lab_id = tmp_path / "lab", netlab.lab_tag()
    up = CliRunner().invoke(cli, ["lab", "up", "--nodes", "2", "--no-portal", "--lab", lab_id,
                                  "--wait", "0.001", "--state", str(state)])
    message = str(up.exception)
    assert up.exit_code != 0 and "n1: its agent" in message, up.output
    assert "within 0.001 s" in message and "its last log line: " in message
    assert f"read {state}/n1/agent.log" in message and f"kept in {state}" in message
    assert "\n" not in message  # one line
    assert (state / "n1" / "agent.log").is_file()  # what the error points to is there
    assert not (state / "lab.json").exists()  # ... but no lab is running
    assert not [ns for ns in lab_namespaces() if ns.startswith(f"mhl-{lab_id}-")]
    status = CliRunner().invoke(cli, ["lab", "status", "--state", str(state)])
    assert status.exit_code != 0 and "meshhub lab up" in str(status.exception)
