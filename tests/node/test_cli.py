"""The ``meshhub`` command's behaviour as a person sees it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from node.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, check=False)


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "config" in result.stdout and "identity" in result.stdout


def test_config_error_is_one_clear_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "node.toml"
    bad.write_text("[portal]\nport = 'x'\n")
    result = run("config", "check", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"meshhub: error: {bad}:2: portal.port: expected integer")
    assert "Traceback" not in result.stderr


def test_config_check_ok(tmp_path: Path) -> None:
    good = tmp_path / "node.toml"
    good.write_text("[node]\nname = 'elm'\n")
    result = run("config", "check", str(good))
    assert result.returncode == 0 and "ok" in result.stdout


def test_config_show_marks_defaults(tmp_path: Path) -> None:
    good = tmp_path / "node.toml"
    good.write_text("[portal]\nport = 9090\n")
    result = run("--config", str(good), "config", "show")
    assert "port = 9090\n" in result.stdout
    assert 'listen = "127.0.0.1"  # default' in result.stdout


def test_identity_show_creates_private_key(tmp_path: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(f"[node]\ndata_dir = '{tmp_path / 'data'}'\n")
    first = run("--config", str(cfg), "identity", "show")
    second = run("--config", str(cfg), "identity", "show")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    key = tmp_path / "data" / "identity.key"
    assert key.stat().st_mode & 0o777 == 0o600


def test_config_check_also_checks_the_network_settings_together(tmp_path: Path) -> None:
    bad = tmp_path / "node.toml"
    bad.write_text('[wifi]\ncountry = "US"\nchannel = 13\n')
    result = run("config", "check", str(bad))
    assert result.returncode == 1
    assert "wifi.channel" in result.stderr and "US" in result.stderr
    assert "Traceback" not in result.stderr
