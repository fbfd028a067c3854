"""The agent's autoupdater: find a newer signed release on the mesh, fetch it, install it.

One thread (``meshhub-update``). At ``update.check_time`` plus a jitter (a
part fixed per node from its key, a part random), when a neighbour says it
holds a new release (``POST /update/v1/notify``), or when asked (``meshhub
update check``), it runs :meth:`UpdateService.check`:

1. Nothing if an admin paused updates for the mesh (:mod:`node.update.pause`).
2. Ask every mirror — the mesh neighbours' agents and ``update.mirrors`` — for
   its manifest; refuse, with a log line saying why, anything that does not
   parse, lists a file twice, names a path outside the release, is huge, or
   lacks ``threshold`` valid signatures of the admins in the node's trust
   anchors (``<data_dir>/registry/anchors.json``: a revoked or unknown key
   does not count). Only versions newer than the running one, never one that
   was rolled back here.
3. Fetch the newest acceptable release's files by hash from mirrors that
   offer it (resumed with Range, hashed before use) into
   ``<update.root>/releases/<version>/``. From then on this node mirrors it,
   and tells its neighbours, so each file crosses each link once.
4. Install it when the staged rollout says this node's turn has come
   (:mod:`node.update.rollout`), with :class:`~node.update.updater.Updater`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import Version

from node.agent_client import AgentError, ByteCounter, NodeKeys, normalise_url
from node.atomic import atomic_write, fsync_dir
from node.frozen import frozen
from node.identity import Identity, fingerprint
from node.logs import OnceLogger
from node.peer_sources import PeerSource, gather_urls
from node.trust.registry import AdminSet
from node.update.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestRejected,
    check_file,
    parse_manifest,
    verify_manifest,
)
from node.update.mirror import MirrorClient
from node.update.pause import PauseState
from node.update.rollout import rollout_share, should_install
from node.update.updater import UpdateInterrupted, Updater

log = logging.getLogger("meshhub.update")
RELEASES_DIR = "releases"


@frozen
class UpdateSettings:
    """How the service behaves; :meth:`from_config` reads the ``[update]`` section."""

    check_time: str = "04:00"
    jitter_minutes: int = 60
    mirrors: tuple[str, ...] = ()
    timeout_seconds: float = 10.0
    #: A burst of notifications or requests costs one check, this long after the first.
    coalesce_seconds: float = 1.0
    #: After a check that could not fetch (mirrors unreachable), try again this soon.
    retry_seconds: float = 600.0

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> UpdateSettings:
        """The settings of ``cfg``'s ``[update]`` section."""
        values: dict[str, Any] = {"check_time": cfg.update.check_time,
                                  "jitter_minutes": cfg.update.jitter_minutes,
                                  "mirrors": tuple(cfg.update.mirrors)}
        values.update(overrides)
        return cls(**values)


@dataclass
class Candidate:
    """One release offered by mirrors: its manifest, the file's bytes and who offers it."""

    manifest: Manifest
    data: bytes
    mirrors: list[str] = field(default_factory=list)


@frozen
class Held:
    """The newest verified release this node holds (and mirrors)."""

    manifest: Manifest
    data: bytes
    folder: Path


class UpdateService:
    """Checks mirrors, fetches and mirrors releases, installs them in turn."""

    def __init__(self, settings: UpdateSettings, updater: Updater, *, node_key: str,
                 anchors: Callable[[], AdminSet | None],
                 pause: Callable[[], PauseState] = PauseState,
                 own_port: Callable[[], int | None] = lambda: None,
                 before_install: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None,
                 identity: Identity | None = None) -> None:
        self.settings = settings
        self.updater = updater
        self.node_key = node_key
        self.identity = identity  #: signs requests to other agents (node.agent_auth)
        #: Which node answers at each mirror's URL (its answers must be signed by it).
        self.keys = NodeKeys()
        self.anchors = anchors
        self.pause = pause
        self.own_port = own_port
        self.before_install = before_install
        self.clock = clock
        #: Bytes exchanged with mirrors on the socket, and bytes of release files received.
        self.counter = ByteCounter()
        self.files = ByteCounter()
        self.stopping = threading.Event()
        self._rng = rng or random.Random()  # noqa: S311 - jitter only
        self._sources: list[PeerSource] = [lambda: self.settings.mirrors]
        self._problems = OnceLogger(log)
        self._held: Held | None = None
        self._check_lock = threading.Lock()
        self._wake = threading.Event()
        self._reasons: list[str] = []
        self._reasons_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last_check_at: float | None = None
        self.last_result = "not checked yet"
        self.last_reason = ""
        self.refusals: dict[str, str] = {}
        self.checks = 0
        self.next_check_at: float | None = None
        self._announced: str | None = None  #: the held version neighbours were told about

    # --- where releases are -----------------------------------------------------------
    @property
    def releases(self) -> Path:
        """``<update.root>/releases``: the verified releases this node holds."""
        return self.updater.root / RELEASES_DIR

    def add_peer_source(self, source: PeerSource) -> None:
        """Add a callable listing mirrors' base URLs (the mesh neighbours' agents)."""
        self._sources.append(source)

    def mirrors(self) -> list[str]:
        """Every mirror now: neighbours and ``update.mirrors``, normalised."""
        return sorted(gather_urls(
            self._sources, normalise_url,
            source_failed=lambda exc: self._problems.warning(
                "peers", "update: listing neighbours failed: %s", exc),
            bad_url=lambda url, exc: self._problems.warning(
                f"bad-mirror:{url}", "update: ignoring mirror: %s", exc)))

    def running_version(self) -> str:
        """The version ``current`` points at, else the installed package's version."""
        current = self.updater.current_version()
        if current:
            return current
        # Read as the health document reads it, without importlib.metadata, whose email,
        # zipfile and csv parsers would stay in the agent for good (docs/scale.md).
        from node.health.collector import software_version

        installed = software_version()
        return "0" if installed == "unknown" else installed

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread: it first finishes an interrupted update, then waits for checks."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="meshhub-update")
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (an unfinished transfer is kept and resumed later)."""
        self.stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def request_check(self, reason: str) -> None:
        """Run a check soon (bursts of requests are coalesced into one)."""
        with self._reasons_lock:
            self._reasons.append(reason)
        self._wake.set()

    def notified(self, address: str, port: int | None) -> bool:
        """A neighbour says it holds a new release: check soon (coalesced; nothing it says
        is trusted, the check verifies everything)."""
        self.request_check(f"{address[:45]} holds a new release")
        return True

    def _run(self) -> None:
        try:
            self.updater.recover(fresh_start=True)
        except UpdateInterrupted:
            return
        except Exception:
            log.exception("update: finishing an interrupted update failed")
        held = self.reload_held()
        self._announced = str(held.manifest.version) if held else None
        self.next_check_at = self._next_daily(self.clock())
        while not self.stopping.is_set():
            timeout = max(0.0, (self.next_check_at or 0) - self.clock())
            if self._wake.wait(min(timeout, 3600.0)):
                self.stopping.wait(self.settings.coalesce_seconds)
                self._wake.clear()
            if self.stopping.is_set():
                break
            with self._reasons_lock:
                reasons, self._reasons = self._reasons, []
            now = self.clock()
            if now >= (self.next_check_at or 0):
                reasons.append("daily check")
                self.next_check_at = self._next_daily(now + 60)
            if not reasons:
                continue
            try:
                outcome = self.check("; ".join(dict.fromkeys(reasons)))
            except UpdateInterrupted:
                break
            except Exception:
                log.exception("update: the check failed")
                outcome = "error"
            if outcome in ("fetch failed", "error"):
                retry = self.clock() + self.settings.retry_seconds
                self.next_check_at = min(self.next_check_at or retry, retry)

    def _next_daily(self, now: float) -> float:
        """The next ``check_time`` (local) after ``now``, plus this node's jitter."""
        hour, minute = (int(x) for x in self.settings.check_time.split(":"))
        draw = int.from_bytes(hashlib.sha256(f"meshhub check\n{self.node_key}".encode())
                              .digest()[:8], "big") / 2**64
        jitter = self.settings.jitter_minutes * 60 * (0.75 * draw + 0.25 * self._rng.random())
        local = dt.datetime.fromtimestamp(now).astimezone()
        at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        moment = at.timestamp() + jitter
        while moment <= now:
            at += dt.timedelta(days=1)
            moment = at.timestamp() + jitter
        return moment

    # --- held releases ----------------------------------------------------------------
    def reload_held(self) -> Held | None:
        """Find the newest release under ``releases/`` that still verifies; mirror only that."""
        anchors = self._anchors()
        best: Held | None = None
        folders = sorted(self.releases.iterdir()) if self.releases.is_dir() else []
        for folder in folders:
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            path = folder / MANIFEST_NAME
            try:
                data = path.read_bytes()
                manifest = parse_manifest(data, str(path))
                if anchors is None:
                    raise ManifestRejected(str(path), "no trust anchors to verify it with")
                verify_manifest(manifest, anchors, str(path))
                if str(manifest.version) != folder.name:
                    raise ManifestRejected(str(path), f"it is release {manifest.version}, "
                                                      f"in folder {folder.name}")
                for item in manifest.files:
                    check_file(folder / item.path, item, str(folder))
            except (OSError, ManifestRejected) as exc:
                self._problems.warning(f"held:{folder}", "update: not mirroring %s: %s",
                                       folder, exc)
                continue
            if best is None or manifest.version > best.manifest.version:
                best = Held(manifest, data, folder)
        self._held = best
        return best

    def served_manifest(self) -> bytes | None:
        """The manifest of the newest verified release held (``GET /update/v1/manifest``)."""
        held = self._held
        return held.data if held is not None else None

    def served_file(self, sha256: str) -> Path | None:
        """A file listed in the held release, by hash (``GET /update/v1/files/<sha256>``)."""
        held = self._held
        if held is None:
            return None
        for item in held.manifest.files:
            if item.sha256 == sha256:
                return held.folder / item.path
        return None

    def import_release(self, folder: Path) -> Manifest:
        """Verify a release folder (signatures, every hash) and hold it; raise if refused."""
        anchors = self._anchors()
        if anchors is None:
            raise ManifestRejected(str(folder), "this node has no trust anchors "
                                                "(<data_dir>/registry/anchors.json)")
        data = (folder / MANIFEST_NAME).read_bytes()
        manifest = verify_manifest(parse_manifest(data, str(folder / MANIFEST_NAME)), anchors,
                                   str(folder))
        for item in manifest.files:
            check_file(folder / item.path, item, str(folder))
        incoming = self._incoming(manifest)
        for item in manifest.files:
            shutil.copyfile(folder / item.path, incoming / item.path)
        self._complete(incoming, manifest, data)
        return manifest

    def _incoming(self, manifest: Manifest) -> Path:
        incoming = self.releases / f".incoming-{manifest.version}"
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming

    def _complete(self, incoming: Path, manifest: Manifest, data: bytes) -> Path:
        """Make ``incoming`` the release folder ``releases/<version>`` (atomic rename)."""
        for item in manifest.files:
            check_file(incoming / item.path, item, str(incoming))
        for extra in incoming.iterdir():
            if extra.name not in {f.path for f in manifest.files}:
                extra.unlink()
        atomic_write(incoming / MANIFEST_NAME, data)
        final = self.releases / str(manifest.version)
        if final.exists():
            shutil.rmtree(final)
        os.replace(incoming, final)
        fsync_dir(self.releases)
        self._prune(keep={final.name, self.running_version()})
        return final

    def _prune(self, keep: set[str]) -> None:
        for folder in self.releases.iterdir():
            if folder.is_dir() and folder.name not in keep and not folder.name.startswith("."):
                shutil.rmtree(folder, ignore_errors=True)

    # --- one check ----------------------------------------------------------------------
    def _anchors(self) -> AdminSet | None:
        try:
            return self.anchors()
        except Exception as exc:  # an unreadable anchors file: no release can be trusted
            self._problems.warning("anchors", "update: cannot read the trust anchors: %s", exc)
            return None

    def _result(self, outcome: str, detail: str) -> str:
        self.last_result = f"{outcome}: {detail}" if detail else outcome
        return outcome

    def check(self, reason: str = "asked") -> str:
        """One check: pause, mirrors, verify, fetch, rollout, install. Returns the outcome."""
        with self._check_lock:
            self.checks += 1
            self.last_check_at = self.clock()
            self.last_reason = reason
            pause = self.pause()
            if pause.paused:
                return self._result("paused", f"by {pause.actor} ({pause.reason or 'no reason'})")
            anchors = self._anchors()
            if anchors is None:
                self._problems.warning("no-anchors", "update: this node has no trust anchors "
                                       "(<data_dir>/registry/anchors.json), so it cannot verify "
                                       "any release; copy the community's anchors.json there")
                return self._result("no trust anchors", "")
            running = Version(self.running_version())
            refused = set(self.updater.state().refused)
            candidates = self._candidates(anchors, running, refused)
            held = self._held
            if held is not None and str(held.manifest.version) != self._announced:
                self._tell_neighbours(set())  # imported here ('meshhub update import')
                self._announced = str(held.manifest.version)
            if not candidates:
                return self._result("up to date", f"running {running}")
            for candidate in candidates:
                if self.stopping.is_set():
                    return self._result("stopped", "")
                folder = self._obtain(candidate)
                if folder is None:
                    continue
                return self._install(candidate.manifest, folder)
            return self._result("fetch failed", f"release {candidates[0].manifest.version} "
                                "could not be fetched from any mirror")

    def _candidates(self, anchors: AdminSet, running: Version,
                    refused: set[str]) -> list[Candidate]:
        """Acceptable releases newer than ``running``, newest first (held one included)."""
        found: dict[bytes, Candidate] = {}
        self.refusals = {}
        held = self.reload_held()
        offers: list[tuple[str, bytes | None]] = []
        if held is not None:
            offers.append(("<held>", held.data))
        for url in self.mirrors():
            try:
                offers.append((url, MirrorClient(url, timeout=self.settings.timeout_seconds,
                                                 counter=self.counter, identity=self.identity,
                                                 keys=self.keys).manifest()))
                self._problems.resolved(f"mirror:{url}")
            except AgentError as exc:
                if exc.bad_data:  # an oversized or truncated manifest: refused, with the reason
                    self.refusals[url] = exc.reason
                    self._problems.warning(f"refused:{url}:{exc.reason}", "update: %s", exc)
                    continue
                self._problems.warning(f"mirror:{url}", "update: mirror %s unreachable: %s",
                                       url, exc.reason)
        for url, data in offers:
            if data is None:
                continue
            try:
                manifest = parse_manifest(data, f"{url} {MANIFEST_NAME}")
                if manifest.version <= running:
                    continue  # the release running here, or older: nothing to do
                if str(manifest.version) in refused:
                    continue  # rolled back here before: never again
                verify_manifest(manifest, anchors, f"{url} {MANIFEST_NAME}", running)
            except ManifestRejected as exc:
                self.refusals[url] = exc.reason
                self._problems.warning(f"refused:{url}:{exc.reason}", "update: %s", exc)
                continue
            key = _release_key(manifest)
            candidate = found.setdefault(key, Candidate(manifest, data))
            if url != "<held>":
                candidate.mirrors.append(url)
        return sorted(found.values(), key=lambda c: (c.manifest.version, len(c.mirrors)),
                      reverse=True)

    def _obtain(self, candidate: Candidate) -> Path | None:
        """The release folder of ``candidate``: held already, or fetched now from its mirrors."""
        manifest = candidate.manifest
        held = self._held
        if held is not None and _release_key(held.manifest) == _release_key(manifest):
            return held.folder
        incoming = self._incoming(manifest)
        mirrors = list(candidate.mirrors)
        for item in manifest.files:
            target = incoming / item.path
            if target.exists():
                try:
                    check_file(target, item, str(incoming))
                    continue
                except ManifestRejected:
                    target.unlink()
            if not self._fetch_file(item, incoming, mirrors):
                return None
        final = self._complete(incoming, manifest, candidate.data)
        self.reload_held()
        log.info("update: holding release %s (%d files); mirroring it to neighbours",
                 manifest.version, len(manifest.files))
        self._announced = str(manifest.version)
        self._tell_neighbours(set(candidate.mirrors))
        return final

    def _fetch_file(self, item: Any, incoming: Path, mirrors: list[str]) -> bool:
        for url in list(mirrors):
            client = MirrorClient(url, timeout=self.settings.timeout_seconds,
                                  counter=self.counter, files=self.files,
                                  identity=self.identity, keys=self.keys)
            try:
                if client.fetch_file(item, incoming, stop=self.stopping.is_set):
                    return True
            except AgentError as exc:
                if exc.bad_data:
                    mirrors.remove(url)  # not trusted for the rest of this release
                    self.refusals[url] = exc.reason
                    log.warning("update: refused %s from mirror %s: %s", item.path, url,
                                exc.reason)
                else:
                    self._problems.warning(f"fetch:{url}", "update: fetching %s from %s "
                                           "failed: %s", item.path, url, exc.reason)
        return False

    def _tell_neighbours(self, skip: set[str]) -> None:
        """Tell every mirror that did not offer this release that this node now holds it."""
        configured = set()
        for url in self.settings.mirrors:
            with contextlib.suppress(ValueError):
                configured.add(normalise_url(url))
        for url in self.mirrors():
            if url in skip or url in configured:
                continue
            try:
                MirrorClient(url, timeout=2.0, identity=self.identity,
                             keys=self.keys).notify(self.own_port())
            except AgentError as exc:
                log.info("update: could not tell %s about the new release: %s", url, exc.reason)

    def _install(self, manifest: Manifest, folder: Path) -> str:
        version = str(manifest.version)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        if not should_install(self.node_key, version, manifest.date, manifest.rollout_days,
                              now):
            share = rollout_share(manifest.date, manifest.rollout_days, now)
            return self._result("waiting", f"{version} held; this node's turn has not come "
                                f"({share:.0%} of nodes so far)")
        for item in manifest.files:  # once more, right before use
            try:
                check_file(folder / item.path, item, str(folder))
            except ManifestRejected as exc:
                shutil.rmtree(folder, ignore_errors=True)
                self.reload_held()
                log.error("update: %s; the release was removed", exc)
                return self._result("refused", exc.reason)
        self.before_install()
        state = self.updater.apply(version, folder)
        if state.step == "done":
            self._prune(keep={version})
            self.reload_held()
            return self._result("installed", f"now running {version}")
        if state.step == "rolled-back":
            return self._result("rolled back", state.message)
        return self._result("not installed", state.message)

    # --- what others see ------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """``GET /update/v1/status`` and ``meshhub update status``."""
        held = self._held
        return {"node": fingerprint(self.node_key), "running": self.running_version(),
                "held": str(held.manifest.version) if held else None,
                "state": self.updater.state().to_json(), "paused": self.pause().to_json(),
                "last_check_at": self.last_check_at, "last_result": self.last_result,
                "last_reason": self.last_reason, "next_check_at": self.next_check_at,
                "checks": self.checks, "checking": self._check_lock.locked(),
                "refusals": dict(self.refusals),
                "downloaded": {"received_bytes": self.counter.received,
                               "sent_bytes": self.counter.sent,
                               "file_bytes": self.files.received},
                "problems": self._problems.summary()}

    def health(self) -> dict[str, Any]:
        """The ``update`` part of the health document (technicians' table)."""
        held = self._held
        state = self.updater.state()
        return {"running": self.running_version(),
                "held": str(held.manifest.version) if held else None,
                "step": state.step, "last_result": self.last_result,
                "last_check_at": self.last_check_at, "paused": self.pause().paused}


def _release_key(manifest: Manifest) -> bytes:
    """Identifies a release's content, whoever signed it."""
    return manifest.message()
