"""The mesh lab (``meshhub lab``): a whole neighbourhood in network namespaces.

Others should use:
"""

from __future__ import annotations

from node.lab.lab import LabError, LabState, MeshLab, find_lab, lab_namespaces
from node.lab.topology import TOPOLOGIES, links

__all__ = ["TOPOLOGIES", "LabError", "LabState", "MeshLab", "find_lab", "lab_namespaces",
           "links"]
