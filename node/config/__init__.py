"""``node.toml``: the schema (declared once) and its loader."""

from node.config.loader import (
    CONFIG_ENV,
    NodeConfig,
    check_value,
    defaults,
    find_config,
    load_config,
    parse_config,
)
from node.config.schema import CHECKS, SETTINGS, Setting, sections, settings_by_key
from node.errors import ConfigError

__all__ = [
    "CHECKS",
    "CONFIG_ENV",
    "SETTINGS",
    "ConfigError",
    "NodeConfig",
    "Setting",
    "check_value",
    "defaults",
    "find_config",
    "load_config",
    "parse_config",
    "sections",
    "settings_by_key",
]
