"""Write docs/cli.md: every command of meshhub, meshhub-provision and meshhub-portal.

The page is the commands' own help text, so it cannot drift from them;
tests/test_cli_docs.py fails when docs/cli.md is not what this script writes.
Run: .venv/bin/python scripts/cli_docs.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "cli.md"


def _groups() -> list[tuple[str, click.Command]]:
    from node.cli import cli as node_cli
    from portal.cli import cli as portal_cli
    from provisioning.cli import cli as provision_cli

    return [("meshhub", node_cli), ("meshhub-provision", provision_cli),
            ("meshhub-portal", portal_cli)]


def _walk(name: str, command: click.Command, parent: click.Context | None
          ) -> list[tuple[str, str]]:
    settings = {**command.context_settings, "terminal_width": 88, "max_content_width": 88}
    ctx = command.context_class(command, info_name=name, parent=parent, **settings)
    # click caches a command's help option from the first context that asked for it
    # (a test may have invoked a subcommand on its own): ask afresh, as a user would.
    command._help_option = None  # type: ignore[attr-defined]
    text = command.get_help(ctx)
    pages = [(ctx.command_path, text)]
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            child = command.get_command(ctx, sub)
            if child is not None and not child.hidden:
                pages.extend(_walk(sub, child, ctx))
    return pages


def render() -> str:
    """The text of docs/cli.md."""
    lines = ["# Command reference", "",
             "Generated from the commands' own `--help` by `scripts/cli_docs.py`;",
             "`tests/test_cli_docs.py` fails when it is out of date.", ""]
    for prog, group in _groups():
        for path, text in _walk(prog, group, None):
            level = "##" if " " not in path else "###"
            lines += [f"{level} `{path}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


def main() -> int:
    """Rewrite docs/cli.md."""
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
