"""Errors of the node package.

Every error a person can meet derives from :class:`NodeError` and from the
builtin that fits it, so callers may catch either (``except ValueError``
keeps working). Messages say what was wrong, where, and what to do.
"""

from __future__ import annotations


class NodeError(Exception):
    """Base class of every error raised by ``node``."""


class ConfigError(NodeError, ValueError):
    """``node.toml`` (or another configuration file) is invalid.

    ``problems`` holds every problem found, each already formatted as
    ``FILE:LINE: key: message`` so that all of them can be shown at once.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class IdentityError(NodeError, OSError):
    """The node's identity key cannot be read, created or used."""


class StoreError(NodeError, RuntimeError):
    """The content store cannot do what was asked."""


class EntryRejected(StoreError, ValueError):
    """An entry from elsewhere was refused; ``reason`` says why."""

    def __init__(self, reason: str, entry_id: str | None = None) -> None:
        self.reason = reason
        self.entry_id = entry_id
        super().__init__(f"entry {entry_id or '?'} rejected: {reason}")


class ValidationError(NodeError, ValueError):
    """User-supplied content failed validation.

    ``fields`` maps each offending field name to a message that a person can
    act on; forms show them next to the field, the CLI prints them.
    """

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.fields.items()))


class NotFound(NodeError, LookupError):
    """The item asked for does not exist (or was deleted)."""


class PermissionDenied(NodeError, PermissionError):
    """The acting account's role does not allow this action."""
