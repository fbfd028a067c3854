"""How the portal's own process is set up before anything heavy is imported.

The portal faces every resident's phone, and a node may be a Pi Zero 2 W with
512 MB shared by everything, so the ``meshhub-portal`` program keeps its
process lean (docs/serving.md, "Memory"): it keeps OpenSSL out
(:func:`keep_tls_out`), and whatever starts it runs its interpreter at
optimisation level 2 with :func:`portal_environment` (``PYTHONOPTIMIZE=2``:
no docstrings and asserts in memory, about 2 MB less). That constant and
helper live in :mod:`node.runtime`, because the lab and the updater in
``node`` need them too and ``node`` may not import ``portal``.
"""

from __future__ import annotations

import sys

from node.runtime import PORTAL_OPTIMIZE_LEVEL as OPTIMIZE_LEVEL
from node.runtime import portal_environment

__all__ = ["OPENSSL_MODULES", "OPTIMIZE_LEVEL", "keep_tls_out", "let_tls_back",
           "portal_environment"]

#: The modules that would load OpenSSL: the TLS layer and hashlib's OpenSSL backend.
OPENSSL_MODULES = ("ssl", "_ssl", "_hashlib")


def keep_tls_out() -> list[str]:
    """Keep OpenSSL out of this process; returns the modules it kept out.

    The portal never speaks TLS: nginx (or nothing, on the mesh's plain HTTP)
    faces the clients, and the portal makes no outbound requests at all (the
    privacy rule). Yet Flask imports werkzeug's development server, which
    imports ``ssl``, and ``hashlib`` prefers OpenSSL: together they map
    libcrypto and libssl, 4.7 MB of resident memory (bench/memory.py) for
    nothing. Marking the modules absent (``sys.modules[name] = None``, which
    Python documents as "import raises ImportError") makes those libraries take
    their documented fallbacks: no TLS support in ``http.client``/werkzeug and
    CPython's built-in SHA-2, SHA-1, MD5 and BLAKE2 in ``hashlib``.

    Call it first thing in a process that runs only the portal; a module
    that is already imported is left alone (so it is harmless in a test run).
    """
    kept_out = []
    for name in OPENSSL_MODULES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
            kept_out.append(name)
    return kept_out


def let_tls_back() -> None:
    """Undo :func:`keep_tls_out` (the demo's sample PDF generator, fpdf2, imports TLS classes)."""
    for name in OPENSSL_MODULES:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
