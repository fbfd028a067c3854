"""The mesh: babeld supervised and read through its monitoring socket, zeroconf discovery.

No routing logic of our own: babeld decides; this package starts it, follows what
it knows (:class:`MeshState`) and tells the rest of the node who its neighbours
are (:meth:`MeshService.peers`). Others should use:
"""

from __future__ import annotations

from node.mesh.babel_monitor import BabelMonitor, dump
from node.mesh.service import MeshService
from node.mesh.state import MeshSnapshot, MeshState
from node.mesh.supervisor import SupervisedProcess

__all__ = ["BabelMonitor", "MeshService", "MeshSnapshot", "MeshState", "SupervisedProcess",
           "dump"]
