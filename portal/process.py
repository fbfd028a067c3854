"""How the portal's own process is set up before anything heavy is imported.

The portal faces every resident's phone, and a node may be a Pi Zero 2 W with
512 MB shared by everything, so the ``meshhub-portal`` program keeps its
process lean (docs/serving.md, "Memory"): it keeps OpenSSL out
(:func:`keep_tls_out`), and whatever starts it runs its interpreter at
optimisation level 2 with :func:`portal_environment` (``PYTHONOPTIMIZE=2``:
no docstrings and asserts in memory, about 2 MB less). Those helpers live in
:mod:`node.runtime`, because the agent, the lab and the updater in ``node``
need them too and ``node`` may not import ``portal``.
"""

from __future__ import annotations

from node.runtime import OPENSSL_MODULES, keep_tls_out, let_tls_back, portal_environment
from node.runtime import PORTAL_OPTIMIZE_LEVEL as OPTIMIZE_LEVEL

__all__ = ["OPENSSL_MODULES", "OPTIMIZE_LEVEL", "keep_tls_out", "let_tls_back",
           "portal_environment"]
