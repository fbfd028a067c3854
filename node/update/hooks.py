"""What the updater does to the machine: install, restart, and the health check after a switch.

Production defaults: ``python3 -m venv`` + ``pip install --no-index`` from the
release's own wheels (:func:`node.update.updater.pip_installer`); restart =
``systemctl restart meshhub-portal.service`` then ``--no-block`` restart of the
agent, i.e. of this very process, whose successor checks the new version
(:meth:`Updater.recover` with ``fresh_start``). ``update.install_command`` and
``update.restart_command`` replace them (another init system, the mesh lab);
a restart command must not stop the agent, which then checks in-process.

The health check (:class:`HealthProbe`): the agent's API answers, the portal
answers, and babeld has neighbours if it had any before the update.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import urllib.error
from collections.abc import Callable, Sequence
from pathlib import Path

from node.atomic import atomic_write
from node.update.updater import Installer, UpdateInterrupted

log = logging.getLogger("meshhub.update")
BASELINE_FILE = "update-baseline.json"
#: How long the old agent waits for systemd to stop it after asking for its restart.
SELF_RESTART_WAIT_SECONDS = 120.0


def command_installer(argv: Sequence[str], timeout: float = 1800.0) -> Installer:
    """An installer running ``argv`` with ``{venv}``, ``{wheels}`` and ``{version}`` filled in."""

    def install(venv: Path, wheels: Path, version: str) -> None:
        values = {"{venv}": str(venv), "{wheels}": str(wheels), "{version}": version}
        command = [values.get(arg, arg) for arg in argv]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    return install


def command_restart(argv: Sequence[str], timeout: float = 120.0) -> Callable[[], None]:
    """A restart running ``argv`` (it must not stop the agent itself)."""

    def restart() -> None:
        subprocess.run(list(argv), check=True, capture_output=True, timeout=timeout)

    return restart


def systemd_self_restart(stopping: threading.Event,
                         portal: str = "meshhub-portal.service",
                         agent: str = "meshhub-agent.service",
                         wait: float = SELF_RESTART_WAIT_SECONDS) -> Callable[[], None]:
    """Restart the portal, then ask systemd to restart the agent and wait to be stopped.

    Raises :class:`UpdateInterrupted` once the agent is told to stop (its
    successor carries on); returns after ``wait`` seconds if it never is, so
    the health check then runs in this process.
    """

    def restart() -> None:
        subprocess.run(["systemctl", "restart", portal], check=True, capture_output=True,
                       timeout=120)
        subprocess.run(["systemctl", "restart", "--no-block", agent], check=True,
                       capture_output=True, timeout=30)
        if stopping.wait(wait):
            raise UpdateInterrupted("the agent is restarting into the new version")
        log.warning("update: systemd did not restart the agent within %.0f s; checking the "
                    "new version from the running agent", wait)

    return restart


class HealthProbe:
    """The health check after a switch: agent up, portal answers, babeld neighbours back.

    ``neighbours`` counts babeld's neighbours now (None: routing is off).
    :meth:`record_baseline` stores the count before the update in
    ``root/update-baseline.json``, because the process that checks may be a
    new one.
    """

    def __init__(self, root: Path, agent_url: Callable[[], str], portal_url: str | None,
                 neighbours: Callable[[], int | None], timeout: float = 5.0) -> None:
        self.root = root
        self.agent_url = agent_url  #: a callable: the agent's port is known once it listens
        self.portal_url = portal_url.rstrip("/") if portal_url else None
        self.neighbours = neighbours
        self.timeout = timeout

    def record_baseline(self) -> None:
        """Remember how many babeld neighbours this node has before updating."""
        atomic_write(self.root / BASELINE_FILE,
                     json.dumps({"babel_neighbours": self.neighbours()}) + "\n")

    def _baseline(self) -> int:
        try:
            value = json.loads((self.root / BASELINE_FILE).read_text())["babel_neighbours"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return value if isinstance(value, int) else 0

    def _answers(self, url: str) -> str | None:
        """None if ``url`` answers with a status below 500, else why not."""
        try:
            from urllib.request import urlopen  # here: heavy, and an idle agent needs none

            with urlopen(url, timeout=self.timeout) as response:  # noqa: S310
                response.read(65536)
                return None
        except urllib.error.HTTPError as exc:
            return None if exc.code < 500 else f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return str(getattr(exc, "reason", exc))[:120]

    def __call__(self) -> tuple[bool, str]:
        """(healthy, what was seen)."""
        problem = self._answers(f"{self.agent_url().rstrip('/')}/api/health")
        if problem:
            return False, f"the agent's API does not answer ({problem})"
        if self.portal_url is not None:
            problem = self._answers(f"{self.portal_url}/")
            if problem:
                return False, f"the portal does not answer at {self.portal_url}/ ({problem})"
        before, now = self._baseline(), self.neighbours()
        if before > 0 and not now:
            return False, f"babeld has no neighbours (it had {before} before the update)"
        return True, f"agent and portal answer; babeld neighbours {now} (before: {before})"
