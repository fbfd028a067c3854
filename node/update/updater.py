"""The autoupdater's install/switch/check/rollback state machine, safe against power cuts.

Layout under ``root`` (``update.root``, ``/opt/meshhub`` on a node)::

    venvs/<version>/          one virtual environment per version (".meshhub-complete" once whole)
    current -> venvs/<v>      what the units run; switched by symlink + rename (atomic)
    releases/<version>/       verified release folders (manifest.json + wheels), mirrored to others
    update-state.json         the step reached, written atomically before and after each step

Steps of :meth:`Updater.apply`: ``installing`` -> ``installed`` -> ``switched``
-> (services restarted) ``checking`` -> ``done``, or on a failed health check
``rolling-back`` -> ``rolled-back``. :meth:`Updater.recover` (run at every
start) finishes or undoes whatever a power cut interrupted, so that
``current`` always ends on a version that is whole and, once checked,
healthy. The previous version is kept until the next update succeeds.

Everything that touches the machine is injected: the installer (a copy of the
running venv, ``python -m venv`` over it and ``pip install --no-index`` of what
the release changed, in production), ``restart`` (systemctl)
and ``probe`` (agent up, portal answers, babeld neighbours if it had them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.atomic import atomic_write, fsync_dir
from node.runtime import SKIP_IN_PACKAGES, byte_compile_argv
from node.update.venv_copy import (
    COMPLETE_MARK,
    copy_venv,
    distributions,
    installed_sources,
    point_scripts_at,
    running_venv,
)

log = logging.getLogger("meshhub.update")

STATE_FILE = "update-state.json"
#: The steps the state file records, in the order an update takes them.
STEPS = ("idle", "installing", "installed", "switched", "checking", "done", "rolling-back",
         "rolled-back")

Installer = Callable[[Path, Path, str], None]
Probe = Callable[[], tuple[bool, str]]


class UpdateInterrupted(Exception):
    """Raised by ``restart`` or ``sleep`` when this process is about to be stopped.

    The step reached stays recorded; :meth:`Updater.recover` in the next process
    carries on from it.
    """


@dataclass
class UpdateState:
    """What the updater last did; one JSON file, replaced atomically."""

    step: str = "idle"
    version: str | None = None  #: the version being installed
    previous: str | None = None  #: the version to go back to
    refused: list[str] = field(default_factory=list)  #: versions rolled back: not tried again
    message: str = ""
    updated_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The state as a JSON object (also shown in the health document)."""
        return {"step": self.step, "version": self.version, "previous": self.previous,
                "refused": self.refused, "message": self.message, "updated_at": self.updated_at}


#: The umask of what the installer runs: every file of a venv readable by every user.
VENV_UMASK = 0o022
#: Where Debian keeps the pip wheel ``python3 -m venv`` installs from (python3-pip-whl).
PIP_WHEELS = Path("/usr/share/python-wheels")


def pip_installer(python: str = "python3", running: Path | None = None,
                  pip_wheels: Path = PIP_WHEELS) -> Installer:
    """The production installer: a venv at ``venv`` with meshhub ``version`` from ``wheels``,
    byte-compiled for the portal's optimisation level (:mod:`node.runtime`).

    ``running``: the ``current`` link. When it points at a whole venv, the new venv
    starts as a copy of it and pip installs only what the release changed
    (:mod:`node.update.venv_copy`); otherwise it starts empty. pip runs from
    Debian's own pip wheel in ``pip_wheels`` with the new venv's Python, so no pip
    is installed into the venv (``--without-pip``; ``ensurepip`` costs a minute
    under TCG); without that wheel, ``python3 -m venv`` installs pip as usual.
    The portal's user cannot write into the venv, so its ``*.opt-2.pyc`` files
    are made here, for the distributions pip installed only (the copied ones
    have theirs); a module that does not compile fails the install as pip would.
    """

    def run(argv: list[str]) -> None:
        # Readable by every user (a venv holds no secret): the agent's UMask=0007 made
        # pip's files 0660, and meshhub-net (root without CAP_DAC_OVERRIDE) could not
        # import them at the next boot (tests/vm: the node lost its links).
        subprocess.run(argv, check=True, capture_output=True, text=True, umask=VENV_UMASK)

    def install(venv: Path, wheels: Path, version: str) -> None:
        base = running_venv(running) if running is not None else None
        if base is not None:
            copy_venv(base, venv)  # the copies keep the running venv's modes
        pip_wheel = debian_pip_wheel(pip_wheels)
        run([python, "-m", "venv", *(["--without-pip"] if pip_wheel else []), str(venv)])
        if base is not None:
            point_scripts_at(venv / "bin", base, venv)
        site = next(venv.glob("lib/python3*/site-packages"))
        before = distributions(site)
        pip = [str(pip_wheel / "pip")] if pip_wheel else ["-m", "pip"]
        run([str(venv / "bin" / "python"), *pip, "install", "--quiet",
             "--no-index", "--no-cache-dir", "--disable-pip-version-check",
             "--upgrade", "--upgrade-strategy", "eager",
             "--find-links", str(wheels), f"meshhub=={version}"])
        changed = installed_sources(site, distributions(site) - before)
        if changed:  # (compileall given no file would compile all of sys.path)
            run(byte_compile_argv(venv / "bin" / "python", changed, exclude=SKIP_IN_PACKAGES))

    return install


def debian_pip_wheel(folder: Path = PIP_WHEELS) -> Path | None:
    """The newest ``pip-*.whl`` in ``folder`` (pip runs from its wheel), or None."""
    import re

    def key(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.name.split("-")[1]))

    found = sorted(folder.glob("pip-*-py3-none-any.whl"), key=key)
    return found[-1] if found else None


class Updater:
    """Install a verified release beside the running one, switch, check, roll back if needed."""

    def __init__(self, root: str | os.PathLike[str], *, installer: Installer,
                 restart: Callable[[], None], probe: Probe, health_window: float = 300.0,
                 probe_interval: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.root = Path(root)
        self.installer = installer
        self.restart = restart
        self.probe = probe
        self.health_window = health_window
        self.probe_interval = probe_interval
        self._clock = clock
        self._sleep = sleep

    # --- layout --------------------------------------------------------------
    @property
    def current_link(self) -> Path:
        """``root/current``."""
        return self.root / "current"

    def venv(self, version: str) -> Path:
        """The virtual environment folder of ``version``."""
        return self.root / "venvs" / version

    def current_version(self) -> str | None:
        """The version ``current`` points at, or None."""
        try:
            return Path(os.readlink(self.current_link)).name
        except OSError:
            return None

    def is_complete(self, version: str) -> bool:
        """True when ``version``'s venv was installed to the end."""
        return (self.venv(version) / COMPLETE_MARK).exists()

    def state(self) -> UpdateState:
        """The recorded state (idle when none or unreadable)."""
        try:
            raw = json.loads((self.root / STATE_FILE).read_text(encoding="utf-8"))
            return UpdateState(**{k: raw[k] for k in UpdateState().to_json() if k in raw})
        except (OSError, ValueError, TypeError):
            return UpdateState()

    def _save(self, state: UpdateState, step: str, message: str = "") -> UpdateState:
        state.step, state.message, state.updated_at = step, message, time.time()
        atomic_write(self.root / STATE_FILE, json.dumps(state.to_json(), indent=2) + "\n")
        return state

    def switch_to(self, version: str) -> None:
        """Point ``current`` at ``version`` atomically (new symlink, then rename over)."""
        tmp = self.root / f".current.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(f"venvs/{version}", tmp)
        os.replace(tmp, self.current_link)
        fsync_dir(self.root)

    # --- the state machine ------------------------------------------------------
    def apply(self, version: str, wheels: Path) -> UpdateState:
        """Install ``version`` from ``wheels`` (a verified release folder) and switch to it."""
        state = self.state()
        if version in state.refused:
            return self._save(state, state.step, f"{version} was rolled back before; not again")
        previous = self.current_version()
        if previous == version:
            return state
        state = UpdateState(version=version, previous=previous, refused=state.refused)
        self._save(state, "installing")
        if not self.is_complete(version):
            shutil.rmtree(self.venv(version), ignore_errors=True)
            self.venv(version).parent.mkdir(parents=True, exist_ok=True)
            try:
                self.installer(self.venv(version), wheels, version)
            except (OSError, subprocess.CalledProcessError) as exc:
                shutil.rmtree(self.venv(version), ignore_errors=True)
                log.error("update: installing %s failed: %s; staying on %s", version, exc,
                          previous)
                return self._save(state, "idle", f"installing {version} failed: {exc}")
            atomic_write(self.venv(version) / COMPLETE_MARK, version + "\n")
        self._save(state, "installed")
        self.switch_to(version)
        self._save(state, "switched")
        return self._restart_and_check(state)

    def _restart_and_check(self, state: UpdateState, restart: bool = True) -> UpdateState:
        if restart:
            self.restart()
        self._save(state, "checking")
        ok, reason = self._wait_healthy()
        if ok:
            log.info("update: now running %s (health check passed)", state.version)
            self._prune(keep={state.version, state.previous})
            return self._save(state, "done", f"running {state.version}")
        log.error("update: %s failed its health check (%s); rolling back to %s",
                  state.version, reason, state.previous)
        return self._roll_back(state, reason)

    def _roll_back(self, state: UpdateState, reason: str) -> UpdateState:
        self._save(state, "rolling-back", reason)
        if state.previous and self.is_complete(state.previous):
            self.switch_to(state.previous)
            self.restart()
        if state.version and state.version not in state.refused:
            state.refused.append(state.version)
        return self._save(state, "rolled-back", f"{state.version} rolled back: {reason}")

    def _wait_healthy(self) -> tuple[bool, str]:
        deadline = self._clock() + self.health_window
        reason = "no health check ran"
        while True:
            try:
                ok, reason = self.probe()
            except Exception as exc:  # a probe that crashes is a failed check
                ok, reason = False, f"{type(exc).__name__}: {exc}"
            if ok:
                return True, reason
            if self._clock() >= deadline:
                return False, reason
            self._sleep(self.probe_interval)

    def _prune(self, keep: set[str | None]) -> None:
        """Remove venvs other than the current and previous one (after a success)."""
        venvs = self.root / "venvs"
        for folder in venvs.iterdir() if venvs.is_dir() else ():
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def recover(self, *, fresh_start: bool = False) -> UpdateState:
        """Finish or undo an update a power cut interrupted; run at every start.

        ``fresh_start``: the caller is the agent starting after the switch (a boot,
        or the restart the update itself asked for), so the services already run
        the version ``current`` points at: check it without restarting them again.
        """
        state = self.state()
        current = self.current_version()
        if state.step in ("idle", "done", "rolled-back"):
            return state
        if state.step == "rolling-back":
            if fresh_start and state.previous is not None and current == state.previous:
                if state.version and state.version not in state.refused:
                    state.refused.append(state.version)
                return self._save(state, "rolled-back", f"{state.version} rolled back: "
                                  f"{state.message or 'interrupted rollback'}")
            return self._roll_back(state, state.message or "interrupted rollback")
        if state.step in ("installing", "installed") and current != state.version:
            if state.version and not self.is_complete(state.version):
                shutil.rmtree(self.venv(state.version), ignore_errors=True)
            log.warning("update: %s was interrupted before the switch; still on %s",
                        state.version, current)
            return self._save(state, "idle", f"{state.version}: interrupted before the switch")
        # switched (or switched but not yet recorded) / checking: the new version must prove
        # itself again, or go.
        if state.version is None or not self.is_complete(state.version):
            return self._roll_back(state, "the new version is not whole")
        if current != state.version:
            self.switch_to(state.version)
            fresh_start = False
        return self._restart_and_check(state, restart=not fresh_start)
