"""The meshhub portal: the Flask hub residents and organisers use on every node.

:func:`create_app` (in :mod:`portal.app`) builds it. This package file imports
nothing heavy on purpose: the ``meshhub-portal`` program must be able to set up
its process (see :func:`portal.process.keep_tls_out`) before Flask and its
dependencies load, and ``meshhub-portal --help`` should not pay for Flask.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "csrf"]


def __getattr__(name: str) -> Any:
    """``portal.create_app`` and ``portal.csrf``, imported from :mod:`portal.app` on first use."""
    if name in __all__:
        from portal import app

        return getattr(app, name)
    raise AttributeError(f"module 'portal' has no attribute {name!r}")
