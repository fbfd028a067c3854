"""How the portal's and the agent's Python interpreters are run, in one place for every launcher.

The portal runs at Python's optimisation level 2 (``PYTHONOPTIMIZE=2``, what
``python -OO`` does): docstrings and ``assert`` statements are dropped from
the bytecode, which measured about 2 MB less resident memory for the served
portal (bench/memory.py; docs/serving.md, "Memory"). The agent runs at the
same level (:func:`agent_environment`: about 1 MB less, docs/scale.md), and
keeps it to itself (:func:`agent_process`): its children (pip in the updater,
dnsmasq's lease hook) run at Python's default. The ``meshhub`` command a person
types keeps its help texts and assertions.

Everything that starts a production-like portal takes its environment from
:func:`portal_environment` (the lab, the benchmarks; the systemd unit spells
it out and a test compares it with :data:`PORTAL_OPTIMIZE_LEVEL`), so what the
lab and the benchmarks measure is what a node runs. This lives in ``node``
because the lab and the updater need it and ``node`` may not import
``portal``; :mod:`portal.process` re-exports it.

Level-2 bytecode lives in its own ``*.opt-2.pyc`` files, which nothing
writes by default: pip compiles at level 0, Debian compiles its standard
library at level 0, and the portal's user cannot write into its read-only
virtual environment. Whatever installs the portal's code therefore
byte-compiles it at level 2 as well (:func:`byte_compile_for_portal`: the
updater's installer and ``lab up``; the image's first-boot script spells the
same commands out, and a test compares them). Otherwise every start compiles
every module from source again: with only the standard library left
uncompiled the portal took 0.66 s instead of 0.28 s to start on x86-64, which
is several seconds on a Pi Zero 2 W.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from types import ModuleType

#: The optimisation level of the portal's interpreter (``PYTHONOPTIMIZE``).
PORTAL_OPTIMIZE_LEVEL = 2
#: The agent's: the same, so that the same ``*.opt-2.pyc`` files serve both.
AGENT_OPTIMIZE_LEVEL = PORTAL_OPTIMIZE_LEVEL
#: The environment variable that sets it (Python's own, equivalent to ``-O``/``-OO``).
OPTIMIZE_VARIABLE = "PYTHONOPTIMIZE"
#: Python's own variable (``-X no_debug_ranges``) that keeps only line numbers in code
#: objects, not each instruction's columns: an agent's code loaded from bytecode files is
#: stripped of them as it is loaded (0.26 MiB of location tables less in what the agent
#: imports; 0.15-0.2 MiB of an idle agent's own memory, docs/scale.md). What it costs: a
#: traceback in the agent's log names the line but draws no ``^^^^`` under the failing part.
NO_DEBUG_RANGES_VARIABLE = "PYTHONNODEBUGRANGES"
#: What :func:`agent_environment` sets, and its unit spells out
#: (images/overlay/usr/lib/systemd/system/meshhub-agent.service).
AGENT_VARIABLES = {OPTIMIZE_VARIABLE: str(AGENT_OPTIMIZE_LEVEL), NO_DEBUG_RANGES_VARIABLE: "1"}
#: What :func:`portal_environment` sets, and the portal's unit spells out
#: (images/overlay/usr/lib/systemd/system/meshhub-portal.service): the same two. Without
#: column tables the served portal holds 0.26 MiB less of its own (docs/serving.md).
PORTAL_VARIABLES = {OPTIMIZE_VARIABLE: str(PORTAL_OPTIMIZE_LEVEL), NO_DEBUG_RANGES_VARIABLE: "1"}
#: The modules that would load OpenSSL: the TLS layer and hashlib's OpenSSL backend
#: (:func:`keep_tls_out`).
OPENSSL_MODULES = ("ssl", "_ssl", "_hashlib")
#: What byte-compiling a virtual environment or site-packages skips: the installer's own
#: tooling (pip, setuptools: about half of a node venv's modules) and test folders, which
#: the portal never imports (``_distutils_hack`` it does: a ``.pth`` file loads it at
#: start). Anchored at ``site-packages``, so where a checkout lies does not matter.
SKIP_IN_PACKAGES = r"/site-packages/(pip|setuptools|pkg_resources|.+/tests?)/"
#: What byte-compiling the standard library (``.../python3.N``) skips: the test suites,
#: the GUI and 2to3 tools, and the third-party folders in it (compiled on their own).
SKIP_IN_STDLIB = (r"/python3\.\d+/(site-packages|dist-packages|idlelib|tkinter|turtledemo|"
                  r"lib2to3|ensurepip|(.+/)?tests?)/")


def portal_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to start ``meshhub-portal serve`` with: ``base`` (default: this
    process's environment) with :data:`PORTAL_VARIABLES` set: ``PYTHONOPTIMIZE`` at
    :data:`PORTAL_OPTIMIZE_LEVEL` and no column tables in its code objects.

    At that level the interpreter drops docstrings and asserts, which the served
    portal never needs. The visible effects: click's ``--help`` texts of that
    process are blank (nothing starts the served portal to ask it for help), and a
    traceback in its log names each line without drawing ``^^^^`` under the failing
    part of it. Its Markdown renderer child inherits both.
    """
    environment = dict(os.environ if base is None else base)
    environment.update(PORTAL_VARIABLES)
    return environment


def agent_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to start ``meshhub agent`` with: ``base`` (default: this process's
    environment) with :data:`AGENT_VARIABLES` set: ``PYTHONOPTIMIZE`` at
    :data:`AGENT_OPTIMIZE_LEVEL` and no column tables in its code objects."""
    environment = dict(os.environ if base is None else base)
    environment.update(AGENT_VARIABLES)
    return environment


def agent_process(environ: MutableMapping[str, str] | None = None) -> None:
    """Set up the agent's own process first thing: take :data:`AGENT_VARIABLES`
    (``PYTHONOPTIMIZE``, ``PYTHONNODEBUGRANGES``) out of the environment its children
    inherit (``environ``, default ``os.environ``), keep
    OpenSSL out (:func:`keep_tls_out`: the agent speaks plain HTTP to its neighbours,
    signed, and OpenSSL cost an idle agent 1.2 MiB of its own memory, docs/scale.md).
    It renders no Markdown: the portal does (portal/rendering.py).
    The level is the agent's own, set by its launcher; pip (the updater) and dnsmasq's
    lease hook run at Python's default, the portal as :func:`portal_environment` says."""
    environ = os.environ if environ is None else environ
    for name in AGENT_VARIABLES:
        environ.pop(name, None)
    keep_tls_out()


def keep_tls_out() -> list[str]:
    """Keep OpenSSL out of this process; returns the modules it kept out.

    Neither the portal nor the agent speaks TLS: nginx (or nothing, on the mesh's
    plain HTTP) faces the clients, and nodes talk to each other in plain HTTP
    whose requests and answers are signed (docs/security.md). Yet ``http.client``
    (werkzeug's server, urllib) imports ``ssl``, and ``hashlib``
    prefers OpenSSL: together they map libcrypto and libssl, 4.7 MB of resident
    memory in the portal (bench/memory.py), 1.2 MiB of an idle agent's own, for
    nothing. Marking the modules absent (``sys.modules[name] = None``, which
    Python documents as "import raises ImportError") makes those libraries take
    their documented fallbacks: no TLS support in ``http.client``/werkzeug and
    CPython's built-in SHA-2, SHA-1, MD5 and BLAKE2 in ``hashlib``.

    Call it first thing in the process; a module that is already imported is
    left alone (so it is harmless in a test run).
    """
    kept_out = []
    for name in OPENSSL_MODULES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
            kept_out.append(name)
    return kept_out


def let_tls_back() -> None:
    """Undo :func:`keep_tls_out`, for a library that imports TLS classes (the portal demo's
    PDF generator, prometheus_client at the agent's first ``/metrics`` scrape)."""
    for name in OPENSSL_MODULES:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


def import_with_tls(name: str) -> ModuleType:
    """Import ``name``, a library that imports TLS classes it may never use, in a process
    that kept TLS out (:func:`keep_tls_out`); OpenSSL is loaded from then on.

    prometheus_client is one (the agent imports it at the first ``/metrics``
    scrape): it imports ``ssl`` and ``urllib.request.HTTPSHandler``, for pushing to
    a gateway over HTTPS, which the agent never does. ``urllib.request`` defines
    that handler only if ``http.client`` has its HTTPS class, which it lacks when it
    was imported while TLS was kept out (the agent's own client uses h11 and never
    imports it, but an update hook's ``urlopen`` may have before the first scrape).
    So ``urllib.request``, when it is imported here for the first time, is
    imported beside a second ``http.client``, imported with TLS, which is dropped
    afterwards: the process keeps the one it has (whose classes its ``except``
    clauses name), and the handler stays unusable, as it was never used.
    """
    let_tls_back()
    client = sys.modules.get("http.client")
    if (client is not None and not hasattr(client, "HTTPSConnection")
            and "urllib.request" not in sys.modules):
        package = sys.modules["http"]
        del sys.modules["http.client"]
        try:
            importlib.import_module("urllib.request")
        finally:
            sys.modules["http.client"] = client
            package.client = client  # type: ignore[attr-defined]
    return importlib.import_module(name)


def plain_host(host: str) -> str | bytes:
    """``host`` as :func:`socket.getaddrinfo` may take it without the IDNA codec: ASCII
    bytes when it is ASCII (an address, or a name already in ASCII form), else unchanged.

    CPython encodes a host given as ``str`` with the ``idna`` codec, whose first use
    imports ``encodings.idna`` and ``stringprep`` for good (0.06 MiB, in an agent that
    only ever resolves addresses; docs/scale.md). For an ASCII host that codec gives these
    same bytes, so the answer is the same.
    """
    return host.encode("ascii") if host.isascii() else host


def byte_compile_argv(python: str | os.PathLike[str], paths: Iterable[str | os.PathLike[str]],
                      *, exclude: str | None = None) -> list[str]:
    """The command that writes the portal's ``*.opt-2.pyc`` files for the modules under
    ``paths`` with ``python``, the interpreter that will import them.

    ``compileall`` skips files whose bytecode is up to date, so running it again
    costs only a check (0.4 s for a whole development venv and standard library).
    ``exclude``: a regular expression of paths to skip. ``-q`` prints only errors,
    and a module that does not compile makes the command fail. One process, no
    ``-j``: a compiler needs up to ~55 MB for the biggest generated modules, a
    pool of them would crowd a 512 MB node that is serving, and a pool's
    overhead makes the no-change check several times slower.
    """
    argv = [os.fspath(python), "-m", "compileall", "-q", "-o", str(PORTAL_OPTIMIZE_LEVEL)]
    if exclude:
        argv += ["-x", exclude]
    return argv + [os.fspath(path) for path in paths]


def byte_compile_for_portal(python: str | os.PathLike[str],
                            packages: Sequence[str | os.PathLike[str]], *,
                            stdlib: str | os.PathLike[str] | None = None) -> None:
    """Byte-compile ``packages`` (a venv's ``lib`` folder, site-packages, our package
    folders) and, if given, the ``stdlib`` folder of ``python`` at the portal's level.

    Raises :class:`subprocess.CalledProcessError` (with what compileall printed)
    when a module does not compile or a folder cannot be written, as a failed
    ``pip install`` does.
    """
    commands = []
    if packages:  # (compileall given no folder would compile all of sys.path)
        commands.append(byte_compile_argv(python, packages, exclude=SKIP_IN_PACKAGES))
    if stdlib is not None:
        commands.append(byte_compile_argv(python, [stdlib], exclude=SKIP_IN_STDLIB))
    for argv in commands:
        subprocess.run(argv, check=True, capture_output=True, text=True)


def portal_code_folders(run_as: Sequence[str] = ()) -> tuple[list[Path], Path]:
    """Where this interpreter, started by the portal's user, imports the portal from:
    ``(packages, stdlib)``, for ``lab up`` and the benchmarks to byte-compile.

    ``packages`` are our package folders beside ``node`` (a checkout, or
    site-packages) and the interpreter's site-packages. ``run_as`` (e.g. ``setpriv
    --reuid=...``) asks the interpreter as that user, because what it finds may
    differ: a Python under a folder only root may enter falls back, for another
    user, to the standard library built into it (``/usr/lib/python3.N``).
    """
    import json

    probe = ("import json, sysconfig; print(json.dumps([sysconfig.get_path(n) for n in "
             "('purelib', 'platlib', 'stdlib')]))")
    answer = subprocess.run([*run_as, sys.executable, "-c", probe], check=True,
                            capture_output=True, text=True, timeout=60)
    *site, stdlib = (Path(p) for p in json.loads(answer.stdout))
    ours = Path(__file__).resolve().parent.parent
    folders = set(site) | {ours / name for name in ("node", "portal", "hardware", "images")
                           if (ours / name / "__init__.py").exists()}
    outermost = [f for f in folders
                 if f.is_dir() and not any(o != f and o in f.parents for o in folders)]
    return sorted(outermost), stdlib
