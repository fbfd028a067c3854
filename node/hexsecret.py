"""The community's shared 32-byte secrets on a node (mesh key, roaming secret): one file each,
64 hex digits on one line, read with errors that say which file and what to do."""

from __future__ import annotations

import re
from pathlib import Path

from node.errors import ConfigError

_HEX64 = re.compile(r"[0-9a-f]{64}")


def read_hex_secret(path: Path, what: str, missing_hint: str) -> str:
    """The 64 lower-case hex digits in ``path``; a ConfigError naming the file and ``what``
    it should hold, with ``missing_hint`` (how to get it) when the file is not there."""
    try:
        text = path.read_text(encoding="ascii").strip().lower()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no {what}; {missing_hint}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the {what} ({exc})"]) from None
    if not _HEX64.fullmatch(text):
        raise ConfigError([f"{path}: the {what} must be 64 hex digits on one line (make one "
                           "with 'python3 -c \"import secrets; print(secrets.token_hex(32))\"')"])
    return text
