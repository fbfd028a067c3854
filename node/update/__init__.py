"""Signed releases and the node's autoupdater (docs/updates.md).

Public API::

    parse_manifest(data, source) -> Manifest; verify_manifest(m, admin_set, source, running)
    ManifestRejected, Manifest, ReleaseFile, check_file, MANIFEST_NAME
    should_install(node_key, version, date, rollout_days, now), rollout_share, node_draw
    Updater (node.update.updater), create_update_app (node.update.http)
    UpdateService (node.update.service), open_update_service (node.update.setup)
    pause_state, set_pause, PauseState (node.update.pause)
"""

from node.update.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestRejected,
    ReleaseFile,
    check_file,
    parse_manifest,
    verify_manifest,
)
from node.update.rollout import node_draw, rollout_share, should_install

__all__ = ["MANIFEST_NAME", "Manifest", "ManifestRejected", "ReleaseFile", "check_file",
           "node_draw", "parse_manifest", "rollout_share", "should_install", "verify_manifest"]
