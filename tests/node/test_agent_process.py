"""The agent's interpreter (node.runtime): -OO, as its unit and the lab start it, kept
from its children. No module the agent can import may need docstrings or asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from node.runtime import AGENT_OPTIMIZE_LEVEL, OPTIMIZE_VARIABLE, agent_environment, agent_process

ROOT = Path(__file__).resolve().parents[2]

#: Run in a fresh interpreter at the agent's level: set the process up as ``meshhub
#: agent`` does, import the agent and then, until nothing new appears, everything any
#: loaded node module imports anywhere (inside functions too: what a request, a sync
#: round, a scrape or an update may import later). Prints what failed, as JSON.
IMPORT_EVERYTHING = r"""
import ast, importlib, json, os, sys
from node.runtime import agent_process
agent_process()
import node.agent, node.cli.daemon
# Never in the agent's process: the lab and the diagnostics run from the command line,
# and the click group is the command line.
ELSEWHERE = ("node.lab", "node.diag", "node.cli.group", "node.cli.diag_cmd", "node.cli.lab_cmd")
def elsewhere(name):
    return any(name == e or name.startswith(e + ".") for e in ELSEWHERE)
failed, done = {}, set()
def attempt(name, where):
    if elsewhere(name) or name in failed:
        return
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = f"{where}: {type(error).__name__}: {error}"
while True:
    ours = [n for n, m in list(sys.modules.items()) if m is not None and n not in done
            and n.split(".")[0] in ("node", "hardware") and getattr(m, "__file__", None)]
    if not ours:
        break
    for name in ours:
        done.add(name)
        module = sys.modules[name]
        tree = ast.parse(open(module.__file__, encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module]
            else:
                continue
            for target in targets:
                attempt(target, f"{module.__file__}:{node.lineno}")
print(json.dumps({"failed": failed, "optimize": sys.flags.optimize,
                  "inherited": os.environ.get("PYTHONOPTIMIZE"), "modules": len(done)}))
"""


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
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], cwd=ROOT,
                          env=agent_environment(), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["failed"] == {}, "these imports fail in the agent's process:\n" + "\n".join(
        f"  {name}  ({where})" for name, where in report["failed"].items())
    assert report["optimize"] == AGENT_OPTIMIZE_LEVEL and report["inherited"] is None
    assert report["modules"] > 100, "the walk did not reach the agent's modules"
