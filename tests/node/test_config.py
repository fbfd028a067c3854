"""node.toml loading: defaults, and precise messages for every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import SETTINGS, ConfigError, defaults, load_config, parse_config
from node.errors import ConfigError as NodeConfigError


def test_empty_file_gives_declared_defaults(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("")
    config = load_config(path)
    for setting in SETTINGS:
        assert config.get(setting.key) == setting.default
    assert config.portal.port == 8080


def test_values_override_defaults_and_data_dir_is_relative_to_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nname = "elm-street"\ndata_dir = "state"\n[portal]\nport = 9000\n')
    config = load_config(path)
    assert config.node.name == "elm-street"
    assert config.portal.port == 9000
    assert config.data_dir == (tmp_path / "state").resolve()
    assert "portal.port" in config.explicit and "portal.listen" not in config.explicit


def test_every_problem_is_reported_with_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[portal]\nport = "eighty"\nprot = 80\nthreads = 0\n\n[nodde]\nx = 1\n'
                    '[node]\nname = "Bad Name"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert f"{path}:2: portal.port: expected integer, found string 'eighty'" in problems
    assert any(p.startswith(f"{path}:3: portal.prot: unknown key; did you mean 'port'")
               for p in problems)
    assert any(p.startswith(f"{path}:4: portal.threads: expected at least 1") for p in problems)
    assert any(p.startswith(f"{path}:6: [nodde]: unknown section") for p in problems)
    assert any(p.startswith(f"{path}:9: node.name: must be a host name") for p in problems)
    assert isinstance(info.value, NodeConfigError) and isinstance(info.value, ValueError)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[portal]\nport = \n")
    with pytest.raises(ConfigError, match=r"node\.toml: .*line 2"):
        load_config(path)


def test_list_items_are_checked_individually() -> None:
    with pytest.raises(ConfigError, match=r"trust\.node_keys: item 2"):
        parse_config('[trust]\nnode_keys = ["' + "a" * 64 + '", "nothex"]\n')


def test_bool_is_not_accepted_for_int() -> None:
    with pytest.raises(ConfigError, match="expected integer, found true/false"):
        parse_config("[portal]\nport = true\n")


def test_defaults_are_not_shared_between_configs() -> None:
    first = defaults()
    first.values["portal.languages"].append("fr")
    assert "fr" not in defaults().get("portal.languages")


def test_a_section_is_made_once_and_then_read_as_an_attribute() -> None:
    """The agent reads cfg.agent.port at every change babeld reports; each read made the
    section again, looking through every setting twice."""
    from node.config.loader import defaults

    cfg = defaults()
    first = cfg.agent
    assert cfg.agent is first
    assert cfg.agent.port == 9180
    assert cfg == defaults()  # still compared by its values alone
    with pytest.raises(AttributeError):
        cfg.no_such_section  # noqa: B018
