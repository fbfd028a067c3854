"""Run a guide's shell blocks, in the guide's own order, as a newcomer would type them.

A guide's fenced blocks without a language are either commands (the first
line starts with a command in ``COMMANDS``) or sample output (the first line
is in ``OUTPUT_STARTS``); any other block fails the test, so a new kind of
block cannot be skipped silently. Where a guide step cannot run here (a real
SD card, a download, another admin's laptop), the test says so with a
:class:`Step`: a textual substitution that must still match the guide, or a
shell step standing in for prose ("the other admin signs").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: What a command block may start with.
COMMANDS = ("meshhub-provision ", "sudo meshhub-provision ", "export ", "meshhub ")
#: First lines of blocks that show output or file layouts, not commands.
OUTPUT_STARTS = ("registry/", "Offered (removable", "NAME ")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[A-Za-z0-9_-]*)[ \t]*$")


@dataclass(frozen=True)
class Block:
    """One command block of a guide: where it is and its text (continuations kept)."""

    guide: str
    line: int
    text: str


@dataclass
class Step:
    """How the test runs one guide block: the block, substitutions, and prose steps around it.

    ``match`` picks the block (a substring of its text). ``replace`` pairs
    must each occur in the block (so a changed guide fails loudly);
    ``before``/``after`` are shell lines standing in for prose steps.
    """

    match: str
    replace: list[tuple[str, str]] = field(default_factory=list)
    before: str = ""
    after: str = ""
    why: str = ""


def command_blocks(guide: str) -> list[Block]:
    """The command blocks of ``docs/<guide>``, in order; fails on an unknown kind of block."""
    lines = (DOCS / guide).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        start = index + 1
        end = next(i for i in range(start, len(lines)) if lines[i].strip() == "```")
        indent = len(fence.group("indent"))
        body = [line[indent:] for line in lines[start:end]]
        index = end + 1
        if fence.group("lang"):
            continue  # toml, text, ...: examples of files, never commands
        first = next((line for line in body if line.strip()), "")
        if first.startswith(OUTPUT_STARTS):
            continue
        assert first.startswith(COMMANDS), (
            f"docs/{guide}:{start}: a block that is neither a command nor known output "
            f"({first!r}); add its first word to COMMANDS or OUTPUT_STARTS in {__file__}")
        blocks.append(Block(guide, start, "\n".join(body)))
    return blocks


def script_for(guide: str, steps: list[Step]) -> str:
    """The bash script running every block of ``guide`` with ``steps`` applied."""
    blocks = command_blocks(guide)
    parts = []
    used = set()
    for block in blocks:
        text = block.text
        before = after = ""
        for number, step in enumerate(steps):
            if step.match not in text:
                continue
            used.add(number)
            for old, new in step.replace:
                assert old in text, f"docs/{guide}:{block.line}: {old!r} no longer in the block"
                text = text.replace(old, new)
            before, after = before + step.before, after + step.after
        parts.append(f"{before}\nprintf '\\n### docs/{guide}:{block.line}\\n'\n{text}\n{after}")
    missing = [s.match for n, s in enumerate(steps) if n not in used]
    assert not missing, f"docs/{guide}: no block matches {missing} any more"
    return "\n".join(parts)


def run_script(script: str, cwd: Path, timeout: float = 240) -> str:
    """Run ``script`` with bash -e in ``cwd`` (HOME inside it); return its output or fail.

    ``sudo`` is a shell function that runs the command as the test's user:
    every target here is a file, which needs no root. Each command's prompt
    is answered "y", as the volunteer would after reading it.
    """
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHHUB_")}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
               LC_ALL="C.UTF-8")
    prologue = ('set -euo pipefail\nexec 2>&1\nsudo() { "$@"; }\n'
                'meshhub-provision() { command meshhub-provision "$@" <<< y; }\n')
    result = subprocess.run(["bash", "-c", prologue + script], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, f"a guide command failed:\n{result.stdout[-6000:]}"
    return result.stdout
