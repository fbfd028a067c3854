"""Timing constants in one place, with their units in their names.

Tests shrink them with a fixture (see ``tests/conftest.py``) instead of
sleeping for real intervals.
"""

from __future__ import annotations

#: How long a resident's acceptance lets their device through, by default.
GATE_ALLOW_SECONDS = 24 * 3600
#: Sign-in attempts allowed per account and per client within the window.
SIGNIN_MAX_ATTEMPTS = 5
SIGNIN_WINDOW_SECONDS = 15 * 60
#: Residents' listing submissions allowed per client within the window.
SUBMIT_MAX_PER_WINDOW = 3
SUBMIT_WINDOW_SECONDS = 60 * 60
#: How long anonymous pages may be cached by nginx in front of the portal.
PAGE_CACHE_SECONDS = 5
#: Replication (node/sync): how long a node gathers notifications before pulling,
#: so that a burst of posts on a neighbour costs one round, not one per post.
SYNC_COALESCE_SECONDS = 0.05
#: How often the sync service looks for entries appended by other processes
#: (the portal, ``meshhub post``): one cheap ``PRAGMA data_version`` per check.
SYNC_WATCH_SECONDS = 0.5
#: Network timeout of one sync request (connect, and each read), in seconds.
SYNC_HTTP_TIMEOUT_SECONDS = 10.0
#: First back-off after a peer failed or misbehaved; doubles per failure up to
#: ``sync.backoff_max_seconds``.
SYNC_BACKOFF_BASE_SECONDS = 2.0
