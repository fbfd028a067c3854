"""Replication of the hub between nodes over HTTP on the mesh (docs/replication.md).

- :mod:`node.sync.protocol` — the messages and their strict parsing;
- :mod:`node.sync.http` — the server side, a WSGI app the agent mounts at ``/sync/v1``;
- :mod:`node.sync.client` — the client side, one peer at a time, bytes counted;
- :mod:`node.sync.service` — :class:`SyncService`: pull, push-on-change, periodic rounds;
- :mod:`node.sync.files` — library files by SHA-256, resumable, within the quota;
- :mod:`node.sync.backoff` — per-peer back-off;
- the trusted set it replicates for comes from :mod:`node.trust` (registry or node.toml);
- :mod:`node.sync.setup` — :func:`open_sync_service` from a node's configuration.

Import the submodules directly; this package imports nothing, so that
``import node.sync.protocol`` stays light.
"""
