"""`meshhub store`, `meshhub organiser` and `meshhub post` as an operator uses them."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.cli import cli


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f"[node]\ndata_dir = '{tmp_path / 'data'}'\n")
    return path


def run(config: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], input=stdin)


def add_admin(config: Path) -> None:
    result = run(config, "organiser", "add", "ada", "--role", "admin", "--password-stdin",
                 stdin="correct horse battery\n")
    assert result.exit_code == 0, result.output


def test_organiser_add_and_list(config: Path) -> None:
    add_admin(config)
    result = run(config, "organiser", "list")
    assert result.exit_code == 0
    assert "ada" in result.output and "admin" in result.output


def test_organiser_add_prompts_with_confirmation(config: Path) -> None:
    result = run(config, "organiser", "add", "kim", stdin="long password\nlong password\n")
    assert result.exit_code == 0, result.output
    assert "created organiser kim" in result.output


def test_organiser_passwd(config: Path) -> None:
    add_admin(config)
    result = run(config, "organiser", "passwd", "ada", "--password-stdin",
                 stdin="another long one\n")
    assert result.exit_code == 0 and "changed" in result.output


def test_post_notice_prints_id_and_shows(config: Path) -> None:
    add_admin(config)
    result = run(config, "post", "notice", "--as", "ada", "--title", "Water off",
                 "--body", "Tuesday 9-12", "--urgent", "--expires", "2999-12-01T18:00")
    assert result.exit_code == 0, result.output
    notice_id = result.output.strip()
    assert len(notice_id) == 64
    db = sqlite3.connect(config.parent / "data" / "hub.sqlite3")
    assert db.execute("SELECT title, urgent FROM notices WHERE id = ?",
                      (notice_id,)).fetchone() == ("Water off", 1)
    db.close()


def test_post_listing(config: Path) -> None:
    add_admin(config)
    result = run(config, "post", "listing", "--as", "ada", "--category", "free",
                 "--title", "Sofa", "--body", "Blue", "--price", "0")
    assert result.exit_code == 0, result.output
    assert len(result.output.strip()) == 64


def test_bad_expiry_is_a_usage_error(config: Path) -> None:
    result = run(config, "post", "notice", "--as", "ada", "--title", "t", "--body", "b",
                 "--expires", "next tuesday")
    assert result.exit_code == 2 and "not a date-time" in result.output


def test_store_stats_rebuild_verify(config: Path) -> None:
    add_admin(config)
    run(config, "post", "listing", "--as", "ada", "--category", "free", "--title", "Sofa",
        "--body", "Blue")
    stats = run(config, "store", "stats")
    assert stats.exit_code == 0 and "listings" in stats.output and "(this node)" in stats.output
    rebuild = run(config, "store", "rebuild")
    assert rebuild.exit_code == 0
    assert "before:" in rebuild.output and "after:" in rebuild.output
    verify = run(config, "store", "verify")
    assert verify.exit_code == 0 and "2 entries verified: ok" in verify.output


def meshhub(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from node.cli import main; main()",
                           "--config", str(config), *args], input=stdin,
                          capture_output=True, text=True, check=False)


def test_validation_error_is_one_clear_line(config: Path) -> None:
    add_admin(config)
    result = meshhub(config, "post", "notice", "--as", "ada", "--title", "x" * 130,
                     "--body", "b")
    assert result.returncode == 1
    assert result.stderr.startswith("meshhub: error: title: at most 120 characters")
    assert "Traceback" not in result.stderr


def test_unknown_organiser_and_short_password(config: Path) -> None:
    result = meshhub(config, "post", "notice", "--as", "ghost", "--title", "t", "--body", "b")
    assert result.returncode == 1
    assert "meshhub: error: 'ghost' is not an enabled organiser account" in result.stderr
    result = meshhub(config, "organiser", "add", "kim", "--password-stdin", stdin="short\n")
    assert result.returncode == 1
    assert "password: must be at least 10 characters" in result.stderr


def test_verify_fails_on_tampered_database(config: Path) -> None:
    add_admin(config)
    db = sqlite3.connect(config.parent / "data" / "hub.sqlite3")
    db.execute("UPDATE entries SET body = replace(body, 'admin', 'organiser')")
    db.commit()
    db.close()
    result = meshhub(config, "store", "verify")
    assert result.returncode == 1
    assert "body hash mismatch" in result.stdout
    assert "meshhub: error: 1 of 1 entries failed verification" in result.stderr
