"""Errors of the provisioning package (``meshhub-provision``).

They derive from :class:`node.errors.NodeError` (so the command line prints
them as one clear line) and from the fitting builtin.
"""

from __future__ import annotations

from node.errors import NodeError


class ProvisionError(NodeError):
    """Base class of every error raised by ``provisioning``."""


class RegistryError(ProvisionError, ValueError):
    """The registry folder is invalid or the asked change is not possible.

    ``problems`` lists every problem as ``FILE:LINE: key: message``.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class FlashError(ProvisionError, OSError):
    """Writing an image failed; the message says whether the target is usable."""


class ImageError(FlashError):
    """The image file cannot be read: unknown format, truncated, corrupt, 0 or 2+ images."""


class DeviceRefused(FlashError):
    """The target device is not a safe choice (``reasons`` says why)."""

    def __init__(self, device: str, reasons: list[str], overridable: bool,
                 system: bool = False) -> None:
        self.device = device
        self.reasons = list(reasons)
        self.overridable = overridable
        if overridable:
            hint = f" (if you are sure, pass --i-know-this-is-not-removable {device})"
        elif system:
            hint = " (no override: this would destroy the running system)"
        else:
            hint = " (no override)"
        super().__init__(f"{device}: refused: {'; '.join(self.reasons)}{hint}")
