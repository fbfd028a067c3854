"""``python -m portal``: the same as the ``meshhub-portal`` command."""

from portal.cli import program

program()
