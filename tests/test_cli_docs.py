"""Every command is documented: docs/cli.md is exactly what the commands' help says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "scripts" / "cli_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == module.render(), "run: .venv/bin/python scripts/cli_docs.py"


def test_every_command_has_help_text() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    blocks = text.split("```text")[1:]
    assert len(blocks) > 40
    for block in blocks:
        body = block.split("```")[0]
        usage, _, rest = body.strip().partition("\n")
        assert usage.startswith("Usage:"), usage
        assert rest.strip(), f"{usage}: no help text"
