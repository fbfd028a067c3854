"""``meshhub agent`` starts without click, and says the same things as the click group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.cli.daemon import AgentOptions, agent_options


def run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False, timeout=60)


@pytest.mark.parametrize(("argv", "expected"), [
    (["agent"], AgentOptions(None, 0)),
    (["-c", "/etc/n.toml", "agent"], AgentOptions("/etc/n.toml", 0)),
    (["--config", "/etc/n.toml", "agent"], AgentOptions("/etc/n.toml", 0)),
    (["--config=/etc/n.toml", "agent"], AgentOptions("/etc/n.toml", 0)),
    (["-c/etc/n.toml", "-v", "agent"], AgentOptions("/etc/n.toml", 1)),
    (["-vv", "--verbose", "agent"], AgentOptions(None, 3)),
])
def test_the_daemons_command_lines_are_recognised(argv: list[str],
                                                  expected: AgentOptions) -> None:
    assert agent_options(argv) == expected


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["agent", "--help"], ["-h", "agent"], ["--version"], ["status"],
    ["-c"], ["-c", "/etc/n.toml"], ["--bogus", "agent"], ["agent", "extra"], ["-c", "", "agent"],
    ["-c", "/", "agent"],
])
def test_everything_else_goes_to_click(argv: list[str]) -> None:
    assert agent_options(argv) is None


def test_the_environment_names_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHHUB_CONFIG", "/srv/node.toml")
    assert agent_options(["agent"]) == AgentOptions("/srv/node.toml", 0)
    assert agent_options(["-c", "/etc/n.toml", "agent"]) == AgentOptions("/etc/n.toml", 0)


def test_the_agent_does_not_load_click_and_reports_a_missing_config_in_one_line(
        tmp_path: Path) -> None:
    missing = tmp_path / "node.toml"
    code = ("import sys\nfrom node.cli import main\n"
            f"try:\n    main(['-c', {str(missing)!r}, 'agent'])\n"
            "except SystemExit as exc:\n"
            "    print(exc.code, 'click' in sys.modules)\n")
    result = run(code)
    assert result.stdout.split() == ["1", "False"]
    assert result.stderr == (f"meshhub: error: {missing}: file not found; "
                             "create it or pass --config\n")


def test_a_bad_config_reads_the_same_through_the_daemons_path_and_click(
        tmp_path: Path) -> None:
    bad = tmp_path / "node.toml"
    bad.write_text("[agent]\nport = 'x'\n")
    daemon = run(f"from node.cli import main; main(['-c', {str(bad)!r}, 'agent'])")
    checked = run(f"from node.cli import main; main(['config', 'check', {str(bad)!r}])")
    assert daemon.returncode == checked.returncode == 1
    assert daemon.stderr == checked.stderr
    assert daemon.stderr.startswith(f"meshhub: error: {bad}:2: agent.port: expected integer")


@pytest.mark.parametrize(("verbose", "expected"), [
    # Without -v: the agent's own milestones and the updater's steps reach the journal
    # (the gate loaded before the access point opens, an update installed or rolled back),
    # the gate's and the mesh's lines, which name residents' phones and neighbours, do not.
    ([], ["INFO", "INFO", "WARNING", "WARNING"]),
    (["-vv"], ["DEBUG", "DEBUG", "DEBUG", "DEBUG"]),
])
def test_the_agent_logs_its_milestones_and_nothing_about_residents(
        tmp_path: Path, verbose: list[str], expected: list[str]) -> None:
    missing = tmp_path / "node.toml"
    code = ("import logging\nfrom node.cli import main\n"
            f"try:\n    main([*{verbose!r}, '-c', {str(missing)!r}, 'agent'])\n"
            "except SystemExit:\n    pass\n"
            "print(*(logging.getLevelName(logging.getLogger(name).getEffectiveLevel()) for name"
            " in ('meshhub.agent', 'meshhub.update', 'meshhub.gate', 'meshhub.mesh')))")
    assert run(code).stdout.split() == expected
