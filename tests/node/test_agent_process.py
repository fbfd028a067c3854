"""The agent's interpreter (node.runtime): -OO, as its unit and the lab start it, kept
from its children. No module the agent can import may need docstrings or asserts."""

from __future__ import annotations

from node.runtime import AGENT_OPTIMIZE_LEVEL, OPTIMIZE_VARIABLE, agent_environment, agent_process
from tests.import_walk import import_walk_script, run_import_walk

#: Run in a fresh interpreter at the agent's level: set the process up as ``meshhub
#: agent`` does, import the agent and then, until nothing new appears, everything any
#: loaded node module imports anywhere (inside functions too: what a request, a sync
#: round, a scrape or an update may import later). Never in the agent's process: the lab
#: and the diagnostics run from the command line, and the click group is the command line.
IMPORT_EVERYTHING = import_walk_script(
    setup="from node.runtime import agent_process\nagent_process()",
    packages=("node", "hardware"),
    skipped=("node.lab", "node.diag", "node.cli.group", "node.cli.diag_cmd",
             "node.cli.lab_cmd"),
    first="attempt('node.agent', 'the agent')\nattempt('node.cli.daemon', 'the agent')",
    report='{"failed": failed, "optimize": sys.flags.optimize, '
           '"inherited": os.environ.get("PYTHONOPTIMIZE"), "modules": len(done)}')


def test_the_agent_environment_sets_its_level_and_keeps_the_rest() -> None:
    base = {"PATH": "/usr/bin", OPTIMIZE_VARIABLE: "1"}
    assert agent_environment(base) == {"PATH": "/usr/bin", "PYTHONOPTIMIZE": "2"}
    assert base[OPTIMIZE_VARIABLE] == "1", "the caller's mapping is left alone"
    assert AGENT_OPTIMIZE_LEVEL == 2


def test_the_agent_keeps_its_level_from_its_children() -> None:
    environ = {"PATH": "/usr/bin", OPTIMIZE_VARIABLE: "2"}
    agent_process(environ)
    assert environ == {"PATH": "/usr/bin"}


def test_everything_the_agent_can_import_works_at_its_level() -> None:
    report = run_import_walk(IMPORT_EVERYTHING, agent_environment(),
                             "these imports fail in the agent's process")
    assert report["optimize"] == AGENT_OPTIMIZE_LEVEL and report["inherited"] is None
    assert report["modules"] > 100, "the walk did not reach the agent's modules"
