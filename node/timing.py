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
