"""The node's network plan: address plan, daemon configurations and the captive gate.

Rendering is pure (``NodeConfig`` in, text out); :func:`build_plan` gathers every
rendered file and the commands that would apply them. Others should use:
"""

from __future__ import annotations

from node.net.addressing import AddressPlan, address_plan
from node.net.plan import NetworkPlan, PlannedFile, build_plan
from node.net.validate import check_network

__all__ = ["AddressPlan", "NetworkPlan", "PlannedFile", "address_plan", "build_plan",
           "check_network"]
