"""What a process can import, checked in a fresh interpreter set up as that process runs.

The agent (at ``-OO``) and the portal (at ``-OO``, without OpenSSL) each promise that every
module they may import later (inside functions too: what a request, a sync round, a scrape
or an update imports) works in their process. :func:`import_walk_script` writes the one
program both checks run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: After the set-up and the first imports: until nothing new appears, import everything
#: any loaded module of ``PACKAGES`` imports anywhere in its source (``attempt`` records
#: what fails, and where it is imported).
_WALK = r"""
while True:
    ours = [n for n, m in list(sys.modules.items()) if m is not None and n not in done
            and n.split(".")[0] in PACKAGES and getattr(m, "__file__", None)]
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
"""


def import_walk_script(setup: str, packages: tuple[str, ...], skipped: tuple[str, ...],
                       first: str, report: str) -> str:
    """A program for ``python -c``: run ``setup`` (the process's own start, e.g. keeping
    OpenSSL out), define ``attempt(name, where)`` (which leaves out ``skipped`` modules and
    their submodules: they never run in that process), run ``first`` (the first imports),
    walk every import of ``packages`` from there, and print ``report`` (a Python
    expression over ``failed``, ``done`` and ``sys``) as JSON on the last line."""
    return (f"import ast, importlib, json, os, pkgutil, sys\n{setup}\n"
            f"PACKAGES = {packages!r}\nSKIPPED = {skipped!r}\n"
            "failed, done = {}, set()\n"
            "def attempt(name, where):\n"
            "    if name in failed or any(name == s or name.startswith(s + '.') "
            "for s in SKIPPED):\n"
            "        return\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as error:\n"
            "        failed[name] = f'{where}: {type(error).__name__}: {error}'\n"
            f"{first}\n{_WALK}\nprint(json.dumps({report}))\n")


def run_import_walk(script: str, env: Mapping[str, str], failing: str) -> dict[str, Any]:
    """Run ``script`` (:func:`import_walk_script`) in ``env``; its report, once the test has
    failed if anything could not be imported (``failing`` says what that means, e.g.
    "these imports need OpenSSL")."""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=dict(env),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert report["failed"] == {}, f"{failing}:\n" + "\n".join(
        f"  {name}  ({where})" for name, where in report["failed"].items())
    return report
