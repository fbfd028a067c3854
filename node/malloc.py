"""glibc's malloc, told to keep less: fewer arenas, a fixed mmap threshold, trims.

A long-running Python process (the agent on every node, the portal) leaves freed
memory inside glibc's heap and per-thread arenas, which RSS and PSS keep counting
until ``malloc_trim`` hands it back. Where the C library is not glibc, every
function here does nothing.
"""

from __future__ import annotations

import os
from typing import Any

_M_ARENA_MAX = -8  # mallopt() parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def glibc() -> Any | None:
    """glibc through ctypes, or None where the C library is something else."""
    if "CS_GNU_LIBC_VERSION" not in getattr(os, "confstr_names", {}):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        import ctypes

        return ctypes.CDLL(None)
    except (OSError, ValueError, AttributeError):
        return None


def tune_malloc(arenas: int, mmap_threshold: int) -> bool:
    """Cap glibc's malloc arenas and fix its mmap threshold (call before threads start).

    Returns True if glibc accepted the settings; does nothing (False) where the C
    library is not glibc or the environment already sets them (``MALLOC_ARENA_MAX``,
    ``MALLOC_MMAP_THRESHOLD_``: the environment wins).
    """
    if os.environ.get("MALLOC_ARENA_MAX") or os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    libc = glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, int(arenas))) and \
        bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)))


def trim(libc: Any | None = None) -> bool:
    """Hand the heap's free pages back to the system once (well under a millisecond);
    True if glibc gave memory back. ``libc``: from :func:`glibc` (looked up if None)."""
    libc = libc if libc is not None else glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
