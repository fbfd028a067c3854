"""Runs after the mesh lab tests: nothing any of their labs made is left on the machine."""

from __future__ import annotations

import pytest

from node.lab import lab_namespaces
from tests.conftest import require_root

pytestmark = pytest.mark.root


def test_nothing_is_left_behind() -> None:
    require_root()
    from tests.lab import test_mesh

    made = test_mesh.MADE
    if not made:
        pytest.skip("the mesh lab tests did not run in this session")
    leftovers = [ns for ns in lab_namespaces()
                 if any(ns.startswith(f"mhl-{lab_id}-") for _, lab_id in made)]
    assert not leftovers
    assert not [state for state, _ in made if state.exists()]
    import psutil

    mine = [p.info for p in psutil.process_iter(["pid", "cmdline"])
            if any(str(state) in " ".join(p.info["cmdline"] or []) for state, _ in made)]
    assert not mine, mine
