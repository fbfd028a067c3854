"""Timing defaults shared between modules that are not ``node.toml`` settings.

Timings a community may change are settings, declared once with their default,
unit and help in :mod:`node.config.schema` (``sync.interval_seconds``,
``gate.allow_minutes``, ``organisers.signin_window_minutes``, ...). A timing
that belongs to one module stays at the top of that module, named with its unit
(``node.gate.service.MODE_POLL_SECONDS``). Kept here: the sync service's inner
timings (defaults of ``SyncSettings``, which tests shrink) and the residents'
submission limit (the portal's defaults, which tests override in ``test_config``).
"""

from __future__ import annotations

#: Residents' listing submissions allowed per client within the window.
SUBMIT_MAX_PER_WINDOW = 3
SUBMIT_WINDOW_SECONDS = 60 * 60
#: Residents' reports of listings allowed per client within the window.
REPORT_MAX_PER_WINDOW = 5
REPORT_WINDOW_SECONDS = 60 * 60
#: Replication (node/sync): how long a node gathers notifications before pulling.
#: None: it pulls at once. A burst is gathered anyway: notifications that arrive while
#: a round runs (its pulls take longer than a burst's gaps) are pulled together in the
#: next round, so a burst of posts costs two rounds, not one per post. A fixed wait
#: here delayed every post at every hop (it was 50 ms: 1.3 s across 26 hops).
SYNC_COALESCE_SECONDS = 0.0
#: How often the sync service looks for entries appended by other processes
#: (the portal, ``meshhub post``): one cheap ``PRAGMA data_version`` per check.
SYNC_WATCH_SECONDS = 0.5
#: Told by the kernel that the store was written, but no commit visible yet: look again
#: after these delays before falling back to :data:`SYNC_WATCH_SECONDS`. SQLite's last
#: write to the WAL comes just before the commit is published in its index (shared
#: memory, which inotify does not see), so the first look often comes a moment early;
#: waiting the whole half second delayed every post made through the portal.
SYNC_WATCH_AGAIN_SECONDS = (0.01, 0.05, 0.2)
#: A post a node passes on is handed at once to the neighbours that may lack it; one that
#: pushed this node the author's previous entry before being told it (it gets the
#: author's posts from elsewhere, as an upstream neighbour of a grid does) is given this
#: long to push this one too, and pushed to only if it does not. In a grid two
#: neighbours that got a post at about the same time pushed it to each other: two
#: requests on a link where one does (docs/scale.md, session 12). A wrong guess (the
#: mesh changed) delays the post to that neighbour by this much, once.
SYNC_PUSH_DEFER_SECONDS = 1.0
#: Network timeout of one sync request (connect, and each read), in seconds.
SYNC_HTTP_TIMEOUT_SECONDS = 10.0
#: Total time one pull from one peer may take, all its requests together: a peer
#: dripping its answers a byte at a time is cut off here, whatever each read does.
SYNC_PULL_DEADLINE_SECONDS = 30.0
#: How many peers one round pulls from at once (so one slow peer delays no other).
SYNC_CONCURRENT_PULLS = 3
#: Notifications one sender may make a node act on, per window (more get 429).
SYNC_NOTIFY_BURST = 10
SYNC_NOTIFY_WINDOW_SECONDS = 10.0
#: First back-off after a peer failed or misbehaved; doubles per failure up to
#: ``sync.backoff_max_seconds``.
SYNC_BACKOFF_BASE_SECONDS = 2.0
