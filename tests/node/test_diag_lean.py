"""scapy costs ~60 MB: only the diag commands may load it, never the daemons or --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def loads_scapy(code: str) -> bool:
    check = code + "\nimport sys\nprint(any(m.split('.')[0] == 'scapy' for m in sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            cwd=ROOT, check=False, timeout=60,
                            env={**os.environ, "MESHHUB_CONFIG": "/nonexistent/node.toml"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "True"


def run_cli(*argv: str) -> str:
    return ("from node.cli import main\n"
            "try:\n"
            f"    main({list(argv)!r})\n"
            "except SystemExit:\n"
            "    pass\n")


@pytest.mark.parametrize("code", [
    run_cli("--help"),
    run_cli("diag", "--help"),
    run_cli("diag", "dhcp", "--help"),
    "import node.agent",
    "import node.cli.diag_cmd",
    "import node.diag",
], ids=["meshhub --help", "meshhub diag --help", "meshhub diag dhcp --help", "node.agent",
        "node.cli.diag_cmd", "node.diag"])
def test_scapy_is_not_loaded(code: str) -> None:
    assert not loads_scapy(code)


def test_the_check_itself_sees_scapy_when_a_diagnostic_loads_it() -> None:
    assert loads_scapy("import node.diag.dhcp")
