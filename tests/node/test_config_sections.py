"""node/config/sections.py (the sections' types for mypy) is what the schema says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from node.config import defaults
from node.config.schema import SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def test_the_typed_sections_are_written_from_the_schema() -> None:
    spec = importlib.util.spec_from_file_location("config_sections",
                                                  ROOT / "scripts" / "config_sections.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "node" / "config" / "sections.py").read_text(encoding="utf-8")
    assert current == module.render(), "run: .venv/bin/python scripts/config_sections.py"


def test_every_key_reads_as_an_attribute_of_its_section() -> None:
    cfg = defaults()
    for setting in SETTINGS:
        assert getattr(getattr(cfg, setting.section), setting.name) == cfg.get(setting.key)
