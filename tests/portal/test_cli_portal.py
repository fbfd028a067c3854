"""The ``meshhub-portal`` command: help, the demo that ``make run`` starts, serve, nginx-conf."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.config import load_config
from node.errors import PermissionDenied
from portal.cli import DEMO_PASSWORDS_FILE, cli, load_or_create_passwords, main
from portal.server import refuse_root
from tests.portal.demo_process import Browser, DemoProcess


def test_help_reads_like_documentation() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "serve", "nginx-conf"):
        assert command in result.output
    demo_help = CliRunner().invoke(cli, ["demo", "--help"]).output
    assert "--data" in demo_help and "--port" in demo_help and "Ctrl-C" in demo_help


def test_the_portal_refuses_root_unless_allowed() -> None:
    with pytest.raises(PermissionDenied, match="does not run as root"):
        refuse_root(euid=0)
    refuse_root(euid=0, allow_root=True)
    refuse_root(euid=1000)


def test_a_bad_node_toml_is_one_clear_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "node.toml"
    bad.write_text('[portal]\nport = "eighty"\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--config", str(bad), "--allow-root"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("meshhub-portal: error: ")
    assert f"{bad}:2: portal.port" in err
    assert "Traceback" not in err


def test_nginx_conf_renders_the_site_for_this_node(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[node]\ndata_dir = "data"\n[portal]\nport = 8099\nupload_max_mb = 50\n')
    result = CliRunner().invoke(cli, ["nginx-conf", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "server 127.0.0.1:8099;" in result.output
    assert f"alias {(tmp_path / 'data' / 'library').resolve()}/;" in result.output
    assert "client_max_body_size 51m;" in result.output
    assert not re.search(r"@@[A-Z_]+@@", result.output)


def test_demo_passwords_are_random_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / DEMO_PASSWORDS_FILE
    first, fresh = load_or_create_passwords(path, ["amira", "ben"])
    assert fresh and len(set(first.values())) == 2
    assert all(len(p) >= 16 for p in first.values())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, fresh = load_or_create_passwords(path, ["amira", "ben"])
    assert (again, fresh) == (first, False)
    other, _ = load_or_create_passwords(tmp_path / "other.txt", ["amira", "ben"])
    assert other != first


def test_the_demo_serves_a_neighbourhood_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    demo = DemoProcess.start(folder)
    try:
        passwords = demo.passwords()
        out = demo.output()
        assert demo.url.startswith("http://127.0.0.1:")
        assert f"amira / {passwords['amira']}" in out and "ben / " in out
        browser = Browser(demo.url)
        status, page = browser.get("/")
        assert status == 200
        assert "Elm Street &amp; Riverside" in page or "Elm Street & Riverside" in page
        browser.sign_in("amira", passwords["amira"])
        status, page = browser.get("/organisers/")
        assert status == 200
    finally:
        code = demo.stop()
    assert code in (0, 130)
    config = load_config(folder / "node.toml")
    assert config.data_dir == (folder / "data").resolve()
    assert config.node.name == "demo-node"
    assert (folder / "data" / "identity.key").exists()

    # A second start reuses everything: same passwords, nothing seeded twice.
    demo = DemoProcess.start(folder)
    try:
        assert demo.passwords() == passwords
        assert f"amira / {passwords['amira']}" in demo.output()
        browser = Browser(demo.url)
        browser.sign_in("ben", passwords["ben"])
        status, page = browser.get("/notices/")
        assert status == 200
    finally:
        demo.stop()


def test_the_demo_config_takes_the_agent_port_of_each_start(tmp_path: Path) -> None:
    from portal.cli import DEMO_NODE_NAME, write_demo_config

    path = write_demo_config(tmp_path, 8090, 9190)
    assert load_config(path).agent.port == 9190
    assert load_config(path).portal.port == 8090
    write_demo_config(tmp_path, 8090, 9191)  # a later start with AGENT_PORT=9191
    assert load_config(path).agent.port == 9191
    assert load_config(path).node.name == DEMO_NODE_NAME  # the rest of the file is kept
    assert load_config(path).portal.port == 8090


def test_the_demo_binds_its_agents_port_itself_and_says_when_it_is_taken(
        capsys: pytest.CaptureFixture[str]) -> None:
    from portal.cli import demo_agent_socket

    listener = demo_agent_socket(0)  # handed to the agent: no port released and re-bound
    assert listener is not None
    try:
        port = listener.getsockname()[1]
        assert demo_agent_socket(port) is None
        assert f"the agent cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        listener.close()
