"""``meshhub agent``: the long-running process on every node.

It samples the node's health on a timer (:class:`~node.health.HealthMonitor`)
and serves the node's HTTP API on ``agent.listen``:``agent.port`` with waitress:
``/metrics`` and ``/api/health`` (:mod:`node.health.api`), replication at
``/sync/v1`` (:mod:`node.sync`) and releases at
``/update/v1`` (:mod:`node.update`, when ``update.enabled``).  It runs the
captive gate's socket (:mod:`node.gate`, when ``gate.enabled``) and the mesh
(babeld, its monitor and zeroconf: :class:`~node.mesh.service.MeshService`). On a
gateway it checks the uplink and offers the mesh a default route only while the uplink
works (:class:`~node.mesh.uplink.UplinkWatch`).
SIGTERM or SIGINT stops it cleanly: the API closes, the sampler finishes its
sample, the history queued in memory is written to disk.

It also supervises the node's daemons, each a :class:`Supervised` in
:attr:`Agent.supervised`: wpa_supplicant on an SAE mesh point (:mod:`node.mesh.link`),
babeld (``mesh.routing``), hostapd on a radio and
dnsmasq (``clients.dhcp``; :mod:`node.mesh.access`).  They start after the API
and after the gate's ruleset is loaded (``gate.enabled``: if it cannot be
loaded, hostapd and dnsmasq are not started, so the access point stays closed until
a later try loads it),
and stop in reverse order before the API closes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, MutableMapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from node.config import NodeConfig
from node.errors import NodeError
from node.health import HealthMonitor, Sources
from node.health.probes import run_command, systemd_service_states
from node.logs import OnceLogger
from node.scheduler import Scheduler
from node.thread_names import name_os_threads
from node.waitress_thread import WaitressThread

if TYPE_CHECKING:
    from node.agent_app import WSGIApp
    from node.gate.manager import Runner
    from node.gate.service import GateService
    from node.mesh.uplink import UplinkWatch
    from node.sync.service import SyncService
    from node.update.service import UpdateService

log = logging.getLogger("meshhub.agent")

#: Seconds before the agent tries again to load a gate that failed, doubling each time up
#: to the maximum (a slow ``nft`` at boot must not keep the access point closed for good).
GATE_RETRY_SECONDS = 5.0
GATE_RETRY_MAX_SECONDS = 300.0
#: Where the store's folder is watched: the safety net's period (an event lost in a race).
STORE_FALLBACK_SECONDS = 60.0
#: glibc malloc arenas at most for the agent's dozen threads (glibc's default: 8 per core,
#: each holding freed memory that PSS keeps counting), and its fixed mmap threshold
#: (:func:`node.malloc.tune_malloc`; the environment's ``MALLOC_*`` wins). One: an idle
#: agent's threads mostly wait, and what little they allocate outside the GIL (SQLite,
#: zlib) seldom meets; a second arena held 0.13-0.15 MiB more (docs/scale.md).
MALLOC_ARENAS = 1
MMAP_THRESHOLD_BYTES = 128 * 1024
#: Seconds between two hand-backs of freed heap to the system (``malloc_trim``): one
#: wake-up in five minutes, well under a millisecond each.
TRIM_SECONDS = 300.0


class Supervised(Protocol):
    """A daemon the agent keeps running (babeld, hostapd, dnsmasq): see :attr:`Agent.supervised`."""

    name: str

    def start(self) -> None:
        """Start the daemon (idempotent)."""

    def poll(self) -> str:
        """``up`` or ``down``; called once per health interval, restarts belong here."""
        ...

    def stop(self) -> None:
        """Stop the daemon and wait for it (idempotent)."""


def node_sources(cfg: NodeConfig, root: Path = Path("/")) -> Sources:
    """The real machine's sources for a node: psutil, board facts, systemd units."""
    from node.health.hw import board_sources

    units = tuple(cfg.health.services)
    return Sources(service_states=lambda: systemd_service_states(units, run_command),
                   sys_root=root / "sys", **board_sources(root))


#: The first descriptor systemd passes to a socket-activated service (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3


def systemd_listen_socket(environ: MutableMapping[str, str] | None = None) -> socket.socket | None:
    """The listening socket systemd passed to this process (socket activation), or None.

    Follows sd_listen_fds(3): ``LISTEN_PID`` must name this process and
    ``LISTEN_FDS`` count the sockets, the first at descriptor 3. A unit with a
    ``meshhub-agent.socket`` beside it starts the agent on demand and keeps its
    port bound across restarts; tests use it to hand ``meshhub agent`` a port
    they already hold. The variables are removed, so that no child sees them.
    """
    env = os.environ if environ is None else environ
    pid, count = env.pop("LISTEN_PID", ""), env.pop("LISTEN_FDS", "")
    env.pop("LISTEN_FDNAMES", None)
    if not (pid.isdigit() and int(pid) == os.getpid() and count.isdigit() and int(count) >= 1):
        return None
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    sock.set_inheritable(False)
    return sock


def _bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (IPv4 or IPv6 as the address says), listening."""
    from node.runtime import plain_host

    family, kind, proto, _, address = socket.getaddrinfo(plain_host(host), port,
                                                         type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


class Agent:
    """The agent's health sampler and HTTP API, startable and stoppable in-process.

    ``port=0`` (in tests) picks a free port; :attr:`port` tells which.
    ``listen_socket`` (already bound and listening: systemd's socket activation,
    or a test's) is used instead of binding ``agent.listen``:``agent.port``.
    """

    def __init__(self, cfg: NodeConfig, *, sources: Sources | None = None,
                 interval_seconds: float | None = None, port: int | None = None,
                 listen_socket: socket.socket | None = None,
                 gate_runner: Runner | None = None) -> None:
        self.cfg = cfg
        #: What runs the gate's ``nft``/``ip`` commands (the machine's; tests pass a shell).
        self._gate_runner = gate_runner
        from node.mesh import MeshService

        self.mesh = MeshService(cfg)  # babeld + its monitor + zeroconf, as mesh.* asks
        sources = sources or node_sources(cfg)
        if cfg.mesh.routing:
            sources = dataclasses.replace(sources, mesh=self.mesh.health)
        #: A gateway's check of its uplink: it keeps CAKE on it and, with mesh routing,
        #: offers the mesh a default route only while the uplink works
        #: (node.mesh.uplink, imported only there); None without an uplink.
        self.uplink: UplinkWatch | None = None
        if cfg.clients.uplink_interface:
            from node.mesh.uplink import uplink_watch

            self.uplink = uplink_watch(cfg)
        if self.uplink is not None:
            sources = dataclasses.replace(sources, uplink=self.uplink.health)
        self.update: UpdateService | None = self._open_update()  # node.update, served at /update/v1
        if self.update is not None:
            sources = dataclasses.replace(sources, update=self.update.health)
        self.supervised: list[Supervised] = []
        sources = dataclasses.replace(sources,
                                      service_states=self._daemon_states(sources.service_states))
        self.monitor = HealthMonitor.from_config(cfg, sources)
        self.interval_seconds = float(interval_seconds or cfg.health.interval_seconds)
        self._host = cfg.agent.listen
        self._port = cfg.agent.port if port is None else port
        self._listen_socket = listen_socket
        if listen_socket is not None:
            self._host, self._port = listen_socket.getsockname()[:2]
        self._stop = threading.Event()
        #: One thread for the periodic and file-driven work (node.scheduler): health
        #: samples, the gate's switch, other processes' entries in the store.
        self.scheduler = Scheduler()
        self._server: Any = None  # waitress's server (its stubs lack effective_port)
        self._api: WaitressThread | None = None  # the API's loop thread
        self._problems = OnceLogger(log)
        self._started = False
        self.gate: GateService | None = None  # the captive gate's socket, when gate.enabled
        #: Held while the gate is loaded by a retry, and by stop(): none starts after stop.
        self._gate_lock = threading.Lock()
        self.sync: SyncService | None = None  # replication, served at /sync/v1
        self.roam: Any = self._open_roam()  # accept once, roam everywhere (node.roam)
        from node.mesh.link import mesh_link_daemons

        self.supervised.extend(mesh_link_daemons(cfg))  # wpa_supplicant: the SAE mesh link
        self.supervised.extend(self.mesh.supervised)  # babeld, when mesh.routing
        from node.mesh.access import access_daemons

        self.access: list[Supervised] = list(access_daemons(cfg))  # hostapd, dnsmasq
        self.supervised.extend(self.access)

    def _daemon_states(self, systemd: Callable[[], dict[str, str]]
                       ) -> Callable[[], dict[str, str]]:
        """``health.services`` states: a daemon this agent runs itself (babeld, hostapd,
        dnsmasq, whose Debian units are masked on a node) from its process, the rest from
        systemd. Found on a booted node: asking systemd made every node alert
        "dnsmasq is not running" while the agent's dnsmasq served its residents."""

        def states() -> dict[str, str]:
            found = systemd()
            for daemon in self.supervised:
                if daemon.name in found:
                    found[daemon.name] = daemon.poll()
            return found

        return states

    @property
    def port(self) -> int:
        """The TCP port the API listens on (known after :meth:`start`)."""
        return int(self._server.effective_port) if self._server else self._port

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:9180``."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Take the first sample, then start the sampler thread and the API."""
        if self._started:
            return
        from node.agent_server import create_bounded_server
        from node.health.api import create_app

        self._started = True
        self._sample_once()
        collectors = []
        if self.roam is not None:  # its refusals and gossip on /metrics (counts only)
            counts = self.roam.counts

            def roam_metrics() -> Any:  # made at the first scrape (prometheus_client)
                from node.roam.metrics import RoamMetrics

                return RoamMetrics(counts)

            collectors.append(roam_metrics)
        app, body_limit = self._open_sync(create_app(self.monitor, collectors))
        if self.update is not None:
            from node.agent_app import compose
            from node.update.http import create_update_app

            app = compose(app, {"/update/": create_update_app(self.update)})
        if self.roam is not None:
            from node.agent_app import compose

            app = compose(app, {"/roam/": self.roam.wsgi})
        app = self._guarded(app, body_limit)
        try:
            sock = self._listen_socket or _bound_socket(self._host, self._port)
        except OSError as exc:
            self.stop()
            raise NodeError(f"the agent cannot listen on {self._host}:{self._port} "
                            f"({exc.strerror}); is another agent running? Stop it, or set "
                            "agent.port / agent.listen in node.toml") from None
        # Bound first, so that a busy port fails before waitress starts its worker threads.
        # Twice the limit: a body between the two gets the sync API's JSON 413 unread.
        self._server = create_bounded_server(app, sockets=[sock], threads=4,
                                             ident="meshhub-agent",
                                             max_request_body_size=2 * body_limit,
                                             channel_timeout=30)
        self._api = WaitressThread(self._server, "meshhub-api")
        self.scheduler.every(self.interval_seconds, self._sample_once, "health-sample")
        self.scheduler.start()
        self._api.start()
        log.info("agent API on %s (/metrics, /api/health)", self.url)
        if self.sync is not None:
            self._watch_store(self.sync)
            self.sync.start()
        if self.update is not None:
            self.update.start()
        if self.roam is not None:
            self.roam.start()
        self._start_gate()
        self._start_supervised()
        name_os_threads()  # for top -H and bench/scale.py: every thread has started

    def stop(self) -> None:
        """Stop the API and the sampler and write the history; safe to call twice."""
        if not self._started or self._stop.is_set():
            return
        self._stop.set()
        if self.update is not None:
            self.update.stop()
        with self._gate_lock:  # a retry under way ends first (stop() stops what it started)
            if self.gate is not None:
                self.gate.stop()
        if self.roam is not None:
            self.roam.stop()
        self._stop_supervised()
        if self._api is not None:
            self._api.stop()  # its loop thread closes the connections, workers and sockets
        self.scheduler.stop()  # after the sample it may be taking
        if self.sync is not None:
            self.sync.close()
        self.monitor.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` is requested; True if it was."""
        return self._stop.wait(timeout)

    def run(self) -> None:
        """Run until SIGTERM or SIGINT (the ``meshhub agent`` command)."""
        requested = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("agent: %s received, stopping", signal.Signals(signum).name)
            requested.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        from node import malloc

        malloc.tune_malloc(MALLOC_ARENAS, MMAP_THRESHOLD_BYTES)  # before the threads start
        try:
            self.start()
            if self.sync is not None:  # this thread opened the store and now only waits
                self.sync.store.release()
            # What start-up freed (config, first sample, TOML, imports' garbage) goes back
            # to the system now, and what the periodic work frees, now and then.
            libc = malloc.glibc()

            def trim() -> None:
                malloc.trim(libc)

            trim()
            self.scheduler.every(TRIM_SECONDS, trim, "malloc-trim")
            requested.wait()  # a signal's handler sets it; nothing wakes this thread before
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # --- the captive gate (node.gate): socket for the portal, organisers' switch --
    def _start_gate(self) -> None:
        """Load the gate's ruleset (``nft -f``, the mode in force) and start its socket when
        ``gate.enabled`` (root or CAP_NET_ADMIN needed)."""
        if self.cfg.gate.enabled:
            self._load_gate(attempt=1)

    def _load_gate(self, attempt: int) -> bool:
        """Try to load the gate; on failure, try again later, waiting longer each time.

        A node whose ``nft`` was slow or failed once at boot (seen in a loaded virtual
        machine: ``nft: no answer within 30s``) would otherwise keep its access point closed
        until someone restarts it; a real fault (no nftables, a bad rule) keeps failing and
        keeps saying why, at most every :data:`GATE_RETRY_MAX_SECONDS`.
        """
        from node.gate.manager import run_command
        from node.gate.service import GateService

        try:
            gate = GateService(self.cfg, roam=self.roam, scheduler=self.scheduler,
                               runner=self._gate_runner or run_command)
            gate.apply_mode(gate.manager.mode)  # closed before the AP opens
            gate.start()
            # In the journal (node.cli.daemon.JOURNAL_LOGGERS): the order a technician or
            # the VM test reads, this line before the access point's.
            log.info("gate: ruleset loaded (mode %s) before the access point opens",
                     gate.manager.mode)
        except Exception as exc:  # the health API stays up; the portal will say why
            delay = min(GATE_RETRY_SECONDS * 2 ** (attempt - 1), GATE_RETRY_MAX_SECONDS)
            log.error("gate: not started: %s: %s (trying again in %g s)",
                      type(exc).__name__, exc, delay)
            self.scheduler.once(delay, lambda: self._retry_gate(attempt + 1), "gate-retry")
            return False
        self.gate = gate
        return True

    def _retry_gate(self, attempt: int) -> None:
        """Another try at the gate (the scheduler's thread); once it is loaded, open the
        access point that waited for it."""
        with self._gate_lock:
            if self._stop.is_set() or self.gate is not None or not self._load_gate(attempt):
                return
            log.warning("gate: loaded at try %d; opening the access point", attempt)
            for daemon in self.access:
                self._open_access(daemon)
            name_os_threads()  # the gate's threads, started after the others

    def _open_access(self, daemon: Supervised) -> None:
        """Start hostapd or dnsmasq, once the gate is in, saying so in the journal (the line
        a technician or the VM test reads after the gate's)."""
        log.info("%s: starting (residents' access)", daemon.name)
        daemon.start()

    # --- who may call: signed requests from registered nodes (node.agent_auth) ---
    def _guarded(self, app: Any, body_limit: int) -> Any:
        """``app`` answering ``/sync/`` and ``/update/`` (and ``/roam/`` when roaming) only
        to registered nodes' signed requests, technicians' tools (``agent.client_keys``)
        and this machine."""
        from node.agent_auth import GUARDED_PREFIXES, RequestAuth, guard
        from node.identity import load_or_create_identity

        identity = load_or_create_identity(self.cfg.data_dir)  # names it, signs its answers
        if self.sync is not None:
            trust = self.sync.store.trust
        else:
            from node.trust.choice import trust_for_node

            try:
                trust, _registry = trust_for_node(self.cfg, identity)
            except Exception as exc:  # nobody but this machine gets in
                log.error("agent: no trusted keys (%s: %s); only this machine may call "
                          "/sync/ and /update/", type(exc).__name__, exc)
                trust = None
        tools = frozenset(k.lower() for k in self.cfg.agent.client_keys)

        def allowed(key: str) -> bool:
            return key in tools or (trust is not None and trust.is_trusted(key))

        prefixes = (*GUARDED_PREFIXES, "/roam/") if self.roam is not None else GUARDED_PREFIXES
        return guard(app, RequestAuth(allowed, identity), 2 * body_limit, prefixes)

    # --- roaming (node.roam): acceptances of other nodes, gossiped between agents ---
    def _open_roam(self) -> Any:
        """The roaming service fed with the mesh's neighbours, or None (roam.enabled off,
        no gate, or no roaming secret: logged)."""
        if not self.cfg.roam.enabled:
            return None
        if not self.cfg.gate.enabled:
            log.error("roam: not started: roam.enabled needs gate.enabled")
            return None
        from node.identity import load_or_create_identity
        from node.roam import open_roam_service
        from node.trust.choice import trust_for_node

        try:
            identity = load_or_create_identity(self.cfg.data_dir)
            trust, _registry = trust_for_node(self.cfg, identity)

            def is_registered(key: str) -> bool:
                # The replication store's trust sees registry snapshots arriving by sync.
                current = self.sync.store.trust if self.sync is not None else trust
                return bool(current.is_trusted(key))

            service = open_roam_service(self.cfg, identity, is_registered)
        except Exception as exc:  # the rest of the agent runs; phones accept on each node
            log.error("roam: not started: %s", exc)
            return None
        service.add_peer_source(self.mesh.peers)
        service.add_peer_source(lambda: list(self.cfg.sync.peers))
        return service

    # --- replication (node.sync): its HTTP side beside the health API -----------
    def _open_sync(self, health_app: WSGIApp) -> tuple[WSGIApp, int]:
        """The composed WSGI app and request-body limit; health alone if the store fails."""
        from node.agent_app import compose
        from node.sync.http import create_sync_app
        from node.sync.setup import open_sync_service

        try:
            sync = open_sync_service(self.cfg, own_port=lambda: self.port)
        except Exception as exc:  # the health API stays up; 'meshhub sync status' says why
            log.error("sync: not started: %s: %s", type(exc).__name__, exc)
            return health_app, 1024
        self.sync = sync
        sync.add_peer_source(self.mesh.peers)
        self.mesh.subscribe(lambda: sync.schedule_pull(None))  # a new neighbour: sync
        return (compose(health_app, {"/sync/": create_sync_app(sync)}),
                sync.settings.max_request_bytes)

    def _watch_store(self, sync: SyncService) -> None:
        """Tell replication at once when another process (the portal, ``meshhub post``)
        commits to the store, instead of it polling every half second."""
        store = Path(str(sync.store.path))
        names = {store.name, f"{store.name}-wal"}
        # Not watchable (no inotify): replication polls on its own, as it did.
        if self.scheduler.watch(store.parent, lambda _names: sync.local_change(),
                                "store-watch", names=names, poll_seconds=None):
            sync.watched(STORE_FALLBACK_SECONDS)

    # --- the autoupdater (node.update): releases from the mesh, when update.enabled --
    def _open_update(self) -> UpdateService | None:
        """The update service fed with the mesh's neighbours, or None when disabled."""
        if not self.cfg.update.enabled:
            return None
        from node.identity import load_or_create_identity
        from node.update.setup import open_update_service

        def agent_url() -> str:
            host = "127.0.0.1" if self._host in ("0.0.0.0", "::", "") else self._host  # noqa: S104
            return f"http://{host}:{self.port}"

        def neighbours() -> int | None:
            return len(self.mesh.state.neighbour_addresses()) if self.cfg.mesh.routing else None

        try:
            identity = load_or_create_identity(self.cfg.data_dir)
            service = open_update_service(
                self.cfg, node_key=identity.public_key, identity=identity,
                agent_url=agent_url, neighbours=neighbours, own_port=lambda: self.port)
        except Exception as exc:  # the rest of the agent runs; 'meshhub update status' says
            log.error("update: not started: %s: %s", type(exc).__name__, exc)
            return None
        service.add_peer_source(self.mesh.peers)
        self.mesh.subscribe(lambda: service.request_check("a new neighbour"))
        return service

    # --- supervised daemons (babeld) and the mesh watcher (node.mesh) -----------
    def _start_supervised(self) -> None:
        """Start every supervised daemon, then follow babeld and announce (node.mesh)."""
        for daemon in self.supervised:
            if daemon in self.access and self.cfg.gate.enabled and self.gate is None:
                log.error("%s: not started: the gate is not loaded, so the access point "
                          "stays closed until it is (see the gate's error above)", daemon.name)
                continue
            if daemon in self.access:
                self._open_access(daemon)
            else:
                daemon.start()
        self.mesh.start()
        if self.uplink is not None:
            self.uplink.start()

    def _stop_supervised(self) -> None:
        """Stop announcing and following, then the daemons in reverse order."""
        if self.uplink is not None:
            self.uplink.stop()  # the announcement route goes, the uplink's routes come back
        self.mesh.stop()
        for daemon in reversed(self.supervised):
            daemon.stop()

    def _sample_once(self) -> None:
        try:
            self.monitor.tick()
            self._problems.resolved("tick")
        except Exception as exc:  # the agent must outlive any one bad sample
            self._problems.warning("tick", "health sample failed: %s: %s",
                                   type(exc).__name__, exc)


