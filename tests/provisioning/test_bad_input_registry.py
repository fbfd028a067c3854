"""A newcomer's first registry commands (issue 18, volunteer items 7 and 8)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from provisioning.cli import cli
from provisioning.customise.node_files import render_node_toml
from provisioning.registry import ops


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_init_defaults_give_customise_no_band_note(tmp_path: Path) -> None:
    code, text = invoke("registry", "admin-key", "new", str(tmp_path / "ana.key"))
    assert code == 0, text
    code, text = invoke("registry", "init", str(tmp_path / "registry"), "--name", "Elm",
                        "--ssid", "elm-mesh", "--country", "DE",
                        "--admin-key", str(tmp_path / "ana.key.pub"))
    assert code == 0, text
    assert "channels: access 6, mesh 6" in text and "note" not in text
    community = tomllib.loads((tmp_path / "registry" / "community.toml").read_text())
    assert community["channels"] == {"access": 6, "mesh": 6}
    registered = ops.register_node(tmp_path / "registry", "elm-1", secrets=tmp_path / "s")
    _, notes = render_node_toml(community, registered.record, country="DE", serial=1)
    assert notes == []


def test_init_channel_options(tmp_path: Path) -> None:
    invoke("registry", "admin-key", "new", str(tmp_path / "ana.key"))
    common = ["--name", "Elm", "--ssid", "elm-mesh", "--country", "DE",
              "--admin-key", str(tmp_path / "ana.key.pub")]
    code, text = invoke("registry", "init", str(tmp_path / "a"), *common,
                        "--access-channel", "36")
    assert code == 0 and "channels: access 36, mesh 36" in text, text
    code, text = invoke("registry", "init", str(tmp_path / "b"), *common,
                        "--access-channel", "1", "--mesh-channel", "44")
    assert code == 0 and "different bands" in text and "second radio" in text, text
    code, text = invoke("registry", "init", str(tmp_path / "c"), *common,
                        "--access-channel", "500")
    assert code == 2 and "--access-channel" in text and not (tmp_path / "c").exists()


@pytest.mark.parametrize("registry_exists", [False, True])
def test_admin_key_hint_only_where_there_is_a_registry_to_add_it_to(
        tmp_path: Path, registry_exists: bool) -> None:
    """Before 'init' the key goes in with --admin-key: no [[admins]] lines to paste twice."""
    registry = tmp_path / "registry"
    if registry_exists:
        invoke("registry", "admin-key", "new", str(tmp_path / "ana.key"))
        invoke("registry", "init", str(registry), "--name", "Elm", "--ssid", "elm-mesh",
               "--country", "DE", "--admin-key", str(tmp_path / "ana.key.pub"))
    key = tmp_path / "cy.key"
    code, text = invoke("registry", "-r", str(registry), "admin-key", "new", str(key))
    assert code == 0, text
    if not registry_exists:
        assert "[[admins]]" not in text and f"'registry init --admin-key {key}.pub'" in text
    else:  # rotating in a new admin: the registry does not list the key yet
        assert f"add to {registry / 'community.toml'}" in text and 'name = "cy"' in text
