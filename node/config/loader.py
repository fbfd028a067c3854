"""Load and check ``node.toml``, reporting every problem with file, line and key."""

from __future__ import annotations

import functools
import os
import re
import tomllib
from dataclasses import field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from node.config.schema import ITEM_CHECKS, SETTINGS, Setting, sections, settings_by_key
from node.config.sections import Sections
from node.errors import ConfigError
from node.frozen import frozen

#: Environment variable naming the node.toml to use when none is given.
CONFIG_ENV = "MESHHUB_CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/meshhub/node.toml")


class Section:
    """Read-only attribute access to one section's effective values."""

    def __init__(self, name: str, values: dict[str, Any]) -> None:
        self._name = name
        self._values = MappingProxyType(dict(values))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"node.toml has no key {self._name}.{key}") from None

    def as_dict(self) -> dict[str, Any]:
        """A copy of this section's values."""
        return dict(self._values)


@frozen
class NodeConfig(Sections):
    """The effective configuration: file values over declared defaults.

    Code reads a value as an attribute of its section, ``cfg.portal.upload_max_mb``
    (typed by :mod:`node.config.sections`); :meth:`get` is for a key held in a
    variable (the loader, messages that name the key).
    """

    values: dict[str, Any]
    path: Path | None = None
    explicit: frozenset[str] = field(default_factory=frozenset)

    def __getattr__(self, section: str) -> Section:
        if section.startswith("_") or section not in _section_names():
            raise AttributeError(section)
        prefix = section + "."
        made = Section(section, {k[len(prefix):]: v for k, v in self.values.items()
                                 if k.startswith(prefix)})
        # Kept as an attribute, so that the next read finds it without this method: the
        # agent reads cfg.agent.port at every change babeld reports, and each read looked
        # through every setting twice (docs/scale.md). The values are never changed.
        object.__setattr__(self, section, made)
        return made

    def get(self, key: str) -> Any:
        """The effective value of a dotted key held in a variable, such as ``"portal.port"``."""
        return self.values[key]

    @property
    def data_dir(self) -> Path:
        """The node's data directory, resolved against the config file's folder."""
        raw = Path(os.path.expanduser(self.values["node.data_dir"]))
        if not raw.is_absolute() and self.path is not None:
            raw = self.path.parent / raw
        return raw.resolve()


@functools.lru_cache(maxsize=1)
def _section_names() -> frozenset[str]:
    """The declared sections' names (the settings do not change at run time)."""
    return frozenset(sections())


def defaults() -> NodeConfig:
    """The configuration of a node whose ``node.toml`` is empty."""
    return NodeConfig(values={s.key: _copy(s.default) for s in SETTINGS})


def load_config(path: str | os.PathLike[str]) -> NodeConfig:
    """Read and check ``path``; raise :class:`ConfigError` listing every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: file not found; create it or pass --config"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return parse_config(text, file)


def parse_config(text: str, file: Path | None = None) -> NodeConfig:
    """Check the TOML ``text`` (read from ``file``) against the schema."""
    where = str(file) if file else "<node.toml>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}: {exc}; fix the TOML syntax"]) from None
    locator = _Locator(text)
    known = settings_by_key()
    problems: list[str] = []
    values = {s.key: _copy(s.default) for s in SETTINGS}
    explicit: set[str] = set()
    for section_name, table in data.items():
        if section_name not in sections():
            hint = _did_you_mean(section_name, sections())
            problems.append(f"{where}:{locator.line(section_name)}: [{section_name}]: "
                            f"unknown section{hint}")
            continue
        if not isinstance(table, dict):
            problems.append(f"{where}:{locator.line(section_name)}: {section_name}: "
                            f"expected a table [{section_name}], found a {_tname(table)}")
            continue
        for name, value in table.items():
            key = f"{section_name}.{name}"
            line = locator.line(section_name, name)
            setting = known.get(key)
            if setting is None:
                names = [s.name for s in SETTINGS if s.section == section_name]
                problems.append(f"{where}:{line}: {key}: unknown key{_did_you_mean(name, names)}")
                continue
            message = check_value(setting, value)
            if message:
                problems.append(f"{where}:{line}: {key}: {message}")
            else:
                values[key] = value
                explicit.add(key)
    if problems:
        raise ConfigError(problems)
    return NodeConfig(values=values, path=file.resolve() if file else None,
                      explicit=frozenset(explicit))


def check_value(setting: Setting, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``setting``, or ``None`` if it is."""
    expected = setting.describe_type()
    if not _is_type(value, setting.type):
        return f"expected {expected}, found {_tname(value)} {value!r}"
    if setting.type is list:
        for index, item in enumerate(value):
            if setting.item_type is not None and not _is_type(item, setting.item_type):
                return f"item {index + 1}: expected {expected}, found {_tname(item)} {item!r}"
            item_check = ITEM_CHECKS.get(setting.key)
            if item_check and (message := item_check(item)):
                return f"item {index + 1} ({item!r}) {message}"
    if setting.choices is not None and value not in setting.choices:
        options = ", ".join(repr(c) for c in setting.choices)
        return f"expected one of {options}, found {value!r}"
    if setting.minimum is not None and value < setting.minimum:
        return f"expected at least {setting.minimum:g}, found {value!r}"
    if setting.maximum is not None and value > setting.maximum:
        return f"expected at most {setting.maximum:g}, found {value!r}"
    if setting.check is not None and (message := setting.check(value)):
        return f"{message}, found {value!r}"
    return None


def find_config(path: str | os.PathLike[str] | None = None) -> Path:
    """The node.toml to use: ``path``, else ``$MESHHUB_CONFIG``, else /etc/meshhub."""
    if path:
        return Path(path)
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    return DEFAULT_CONFIG_PATH


def _is_type(value: Any, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def _tname(value: Any) -> str:
    return {bool: "true/false", int: "integer", float: "number", str: "string",
            list: "list", dict: "table"}.get(type(value), type(value).__name__)


def _did_you_mean(name: str, options: list[str]) -> str:
    import difflib  # only for a mistake: not loaded in every process

    close = difflib.get_close_matches(name, options, n=1)
    return f"; did you mean '{close[0]}'?" if close else "; see docs/node-toml.md for valid keys"


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


class _Locator:
    """Finds the line on which a table or key is written, for error messages."""

    _header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, text: str) -> None:
        self._tables: dict[str, int] = {}
        self._keys: dict[tuple[str, str], int] = {}
        current = ""
        for number, line in enumerate(text.splitlines(), start=1):
            if match := self._header.match(line):
                current = match.group(1)
                self._tables.setdefault(current, number)
            elif match := self._key.match(line):
                self._keys.setdefault((current, match.group(1)), number)
                if current == "":
                    self._tables.setdefault(match.group(1), number)

    def line(self, section: str, key: str | None = None) -> int:
        if key is None:
            return self._tables.get(section, 1)
        return self._keys.get((section, key), self._tables.get(section, 1))
