"""Write node/config/sections.py: the typed shape of every node.toml section.

``cfg.portal.upload_max_mb`` is how code reads node.toml; this file tells mypy each
key's type, from the one declaration of it (node/config/schema.py), so a misspelt key
or a wrong type fails ``make test``. tests/node/test_config_sections.py fails when the
file is not what this script writes.
Run: .venv/bin/python scripts/config_sections.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.config.schema import Setting

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "node" / "config" / "sections.py"

HEADER = '''"""The typed shape of node.toml's sections, for type checkers.

Written by scripts/config_sections.py from node/config/schema.py (do not edit);
:class:`node.config.NodeConfig` has one attribute per section, e.g.
``cfg.portal.upload_max_mb`` (an ``int``).
"""

from __future__ import annotations

from typing import Protocol
'''


def _type(setting: Setting) -> str:
    kind, item = setting.type.__name__, setting.item_type
    return f"list[{item.__name__}]" if kind == "list" and item is not None else kind


def render() -> str:
    """The text of node/config/sections.py for the schema as it is now."""
    sys.path.insert(0, str(ROOT))
    from node.config.schema import SETTINGS, sections

    parts = [HEADER]
    for section in sections():
        parts.append(f"\n\nclass {section.title()}Section(Protocol):\n"
                     f'    """``[{section}]``."""\n\n')
        parts.extend(f"    {s.name}: {_type(s)}\n" for s in SETTINGS if s.section == section)
    parts.append('\n\nclass Sections:\n    """The sections of node.toml, by name."""\n\n')
    parts.extend(f"    {section}: {section.title()}Section\n" for section in sections())
    return "".join(parts)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
