"""Signed releases: make a release folder, add admin signatures, verify it as a node would.

Public API::

    make_release(out, version=..., channel=..., rollout_days=..., wheelhouse=...) -> Manifest
    sign_release(folder, key_file) -> (Manifest, valid_count, threshold | None)
    verify_release(folder, anchors_file) -> Manifest

The format and checks live in :mod:`node.update.manifest` (the node's side).
"""

from provisioning.release.ops import make_release, sign_release, verify_release

__all__ = ["make_release", "sign_release", "verify_release"]
