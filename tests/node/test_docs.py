"""Documentation stays true: every node.toml key is documented, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from node.config import SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_declared_key_is_documented_and_no_other() -> None:
    text = (DOCS / "node-toml.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_0-9]+)` \|", text, flags=re.MULTILINE))
    declared = {s.key for s in SETTINGS}
    assert declared - documented == set(), "declared in node/config/schema.py but not in docs"
    assert documented - declared == set(), "documented in docs/node-toml.md but not declared"


def test_documented_defaults_match_the_schema() -> None:
    import json

    text = (DOCS / "node-toml.md").read_text(encoding="utf-8")
    for setting in SETTINGS:
        row = re.search(rf"^\| `{re.escape(setting.key)}` \| [^|]+ \| `([^`]*)` \|", text,
                        flags=re.MULTILINE)
        assert row, setting.key
        assert json.loads(row.group(1)) == setting.default, setting.key
