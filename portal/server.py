"""Serve the portal with waitress, the production WSGI server (docs/serving.md).

Why waitress: pure Python (nothing to compile on a Pi), one process with a
small resident set, and a pool of threads, which suits SQLite's many cheap
concurrent reads in WAL mode. nginx sits in front of it on a node
(``images/nginx/meshhub.conf``); waitress listens on loopback only.

The portal never needs root and refuses to run as root unless the caller
allows it explicitly (the local ``demo`` rehearsal does, with a warning).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from node import malloc
from node.config import NodeConfig
from node.errors import PermissionDenied

log = logging.getLogger(__name__)

#: Connections waitress keeps open at most (phones on a mesh are slow readers).
CONNECTION_LIMIT = 200
#: Seconds an idle keep-alive connection may stay open.
CHANNEL_TIMEOUT_SECONDS = 30
#: glibc malloc arenas at most (its default is 8 per core): each waitress thread
#: would otherwise get an arena of its own, holding freed memory that RSS keeps
#: counting (docs/serving.md, "Memory"). ``MALLOC_ARENA_MAX`` in the environment wins.
MALLOC_ARENAS = 2
#: Allocations at least this big get their own mapping, returned to the system
#: when freed. glibc's default starts at 128 KiB but *rises* after each such
#: free (up to 32 MiB), after which a 100 MB download's buffers stay in the heap.
#: ``MALLOC_MMAP_THRESHOLD_`` in the environment wins.
MMAP_THRESHOLD_BYTES = 128 * 1024
#: Seconds between two ``malloc_trim`` calls while serving (see MemoryTrimmer).
TRIM_INTERVAL_SECONDS = 30.0


def tune_malloc(arenas: int = MALLOC_ARENAS,
                mmap_threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Cap glibc's malloc arenas and fix its mmap threshold for the portal
    (:func:`node.malloc.tune_malloc`; call before threads start).

    Measured with ``bench/memory.py`` (8 threads, 10,000 listings, a 100 MB
    download): capping arenas saved 10-15 MB, fixing the threshold ~12 MB more.
    """
    return malloc.tune_malloc(arenas, mmap_threshold)


class MemoryTrimmer:
    """Hands the heap's free pages back to the system now and every ``interval`` seconds.

    Start-up (building the app, extracting the locale subset) and bursts of
    requests leave freed memory inside glibc's heap, which RSS keeps counting
    until ``malloc_trim`` returns it (about 1 MB after start, measured with
    ``bench/memory.py``). A trim takes well under a millisecond; where the C
    library is not glibc this does nothing.
    """

    def __init__(self, interval: float = TRIM_INTERVAL_SECONDS) -> None:
        import threading

        self.interval = interval
        self._libc = malloc.glibc()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def trim(self) -> bool:
        """Trim once; True if glibc gave memory back."""
        return malloc.trim(self._libc) if self._libc is not None else False

    def start(self) -> None:
        """Trim now, then in a background thread every ``interval`` seconds until :meth:`stop`."""
        import threading

        self.trim()
        if self._libc is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="meshhub-malloc-trim",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.trim()

    def stop(self) -> None:
        """End the background thread (waits for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


#: At most one "Task queue depth" warning per this many seconds (see QueueWarningThrottle).
QUEUE_WARNING_INTERVAL_SECONDS = 60.0


class QueueWarningThrottle(logging.Filter):
    """Let through one of waitress's "Task queue depth is N" warnings per interval.

    waitress logs that warning for *every* request that has to queue, so a
    busy moment writes thousands of lines (the journal on an SD card) and the
    logging itself costs the saturated server a measurable share of its CPU.
    One line a minute still tells the organiser the portal was overloaded.
    """

    def __init__(self, interval: float = QUEUE_WARNING_INTERVAL_SECONDS) -> None:
        super().__init__()
        self.interval = interval
        self._last = -interval
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """True for the first warning of each interval (noting how many were dropped)."""
        import time

        now = time.monotonic()
        if now - self._last < self.interval:
            self.suppressed += 1
            return False
        if self.suppressed:
            record.msg = f"{record.msg} ({self.suppressed} similar warnings suppressed)"
            self.suppressed = 0
        self._last = now
        return True


def throttle_queue_warnings() -> None:
    """Install :class:`QueueWarningThrottle` on waitress's queue logger (once)."""
    queue_logger = logging.getLogger("waitress.queue")
    if not any(isinstance(f, QueueWarningThrottle) for f in queue_logger.filters):
        queue_logger.addFilter(QueueWarningThrottle())


def refuse_root(*, allow_root: bool = False, euid: int | None = None) -> None:
    """Raise :class:`PermissionDenied` when running as root, unless ``allow_root``."""
    uid = os.geteuid() if euid is None else euid
    if uid != 0:
        return
    if not allow_root:
        raise PermissionDenied(
            "the portal does not run as root: start it as the 'meshhub' user "
            "(the systemd unit does), or pass --allow-root for a throw-away test")
    log.warning("running the portal as root: acceptable for a local rehearsal only")


def create_server(app: Callable[..., Any], config: NodeConfig, *, host: str | None = None,
                  port: int | None = None, threads: int | None = None) -> Any:
    """A waitress server for ``app``, bound but not yet serving.

    ``host``/``port``/``threads`` default to ``portal.listen``/``portal.port``/
    ``portal.threads``; port 0 picks a free port (see ``server.effective_port``).
    Call ``server.run()`` to serve and ``server.close()`` to stop.
    """
    from waitress.server import create_server as waitress_server

    throttle_queue_warnings()
    return waitress_server(
        app,
        host=config.portal.listen if host is None else host,
        port=int(config.portal.port if port is None else port),
        threads=int(config.portal.threads if threads is None else threads),
        ident="meshhub",
        connection_limit=CONNECTION_LIMIT,
        channel_timeout=CHANNEL_TIMEOUT_SECONDS,
        # X-Forwarded-For is handled by the app (ProxyFix, portal.behind_proxy);
        # waitress itself trusts no proxy headers.
        clear_untrusted_proxy_headers=False,
        max_request_body_size=(int(config.portal.upload_max_mb) + 1) * 1024 * 1024,
        expose_tracebacks=False,
    )


def serve(config: NodeConfig, *, allow_root: bool = False, host: str | None = None,
          port: int | None = None, on_ready: Callable[[str], None] | None = None) -> None:
    """Build the portal from ``config`` and serve it until interrupted."""
    refuse_root(allow_root=allow_root)
    tune_malloc()
    from node.markdown import render_in_child
    from portal import create_app

    render_in_child()  # an organiser's post: markdown-it and nh3 in a child, not here for good

    app = create_app(config=config)
    server = create_server(app, config, host=host, port=port)
    url = f"http://{server.effective_host}:{server.effective_port}"
    log.info("portal serving on %s with %s threads", url, config.portal.threads)
    if on_ready is not None:
        on_ready(url)
    _stop_on_sigterm()
    trimmer = MemoryTrimmer()
    trimmer.start()
    from portal import pagefiles, rendering

    pending = rendering.start(app, config)  # replicated posts' Markdown (not the agent's job)
    renderer = pagefiles.start(app, config, pending)  # residents' pages as files, for nginx
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if renderer is not None:
            renderer.stop()
        pending.stop()
        trimmer.stop()
        server.close()
        from portal import db

        db.close(app)  # the store, sessions and the technicians' gatherer thread


def _stop_on_sigterm() -> None:
    """Let SIGTERM (systemd's stop, ``kill``) end the server like Ctrl-C does."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


class ServerThread:
    """The portal served by waitress in a background thread (tests and benchmarks).

    ``url`` is where it listens; :meth:`stop` closes every connection and
    waits for the thread, so nothing is left running. The loop thread alone
    closes the server's descriptors (:mod:`node.waitress_thread`).
    """

    def __init__(self, app: Callable[..., Any], config: NodeConfig, *,
                 host: str = "127.0.0.1", port: int = 0, threads: int | None = None) -> None:
        from node.waitress_thread import WaitressThread

        self.server = create_server(app, config, host=host, port=port, threads=threads)
        self.url = f"http://{self.server.effective_host}:{self.server.effective_port}"
        self.port = int(self.server.effective_port)
        self._served = WaitressThread(self.server, "meshhub-waitress")
        self._served.start()

    def stop(self) -> None:
        """Close the listening socket and all connections; join the thread."""
        self._served.stop()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
