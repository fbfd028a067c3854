"""Technicians' diagnostics: rogue DHCP servers, what a phone sees, and a radio survey.

Only the ``meshhub diag`` commands import this package. Its modules use scapy (about
60 MB once loaded), which the node's daemons never load; scapy comes with
``pip install 'meshhub[diagnostics]'``. See ``docs/diagnostics.md``.

* :mod:`node.diag.dhcp` — send a DHCP DISCOVER and list every server that offers;
* :mod:`node.diag.portal` — lease, DNS and each OS's captive check, like a phone;
* :mod:`node.diag.survey` — beacons and stations per channel, and the least busy one.
"""

from __future__ import annotations

from node.errors import NodeError

__all__ = ["SCAPY_HINT", "DiagError"]

#: What to tell a technician whose meshhub was installed without the extra.
SCAPY_HINT = ("the diagnostics need scapy, which is not installed: "
              "pip install 'meshhub[diagnostics]'")


class DiagError(NodeError, RuntimeError):
    """A diagnostic could not run (no such radio, no lease ...); the message says why."""
