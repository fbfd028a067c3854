"""Updates on the booted node, through the real updater: pip, the switch, the health check.

On the node the VM tests boot (tests/vm/conftest.py), releases made from this
checkout's own wheel with a higher version and signed with the registry's admin
key (tests/vm/releases.py) are handed over through the shared folder and
imported with ``meshhub update import``, as a technician does; the agent's
updater does the rest: a copy of the running venv, ``python3 -m venv`` over it,
``pip install --no-index`` of what the release changed from its wheels, the
switch of ``/opt/meshhub/current``, the restart of the portal and of the agent
itself, and the health check (the new agent's). Three steps of one story
(``scenario``), cheapest first:

1. the plug is pulled while pip installs the newer release: the node boots on
   the version it ran, whole, and says the update was interrupted;
2. the same release installed to the end: both processes run the new venv;
3. a release whose portal cannot start fails its health check and is rolled
   back within the card's health window (``HEALTH_WINDOW``), never tried again.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.vm.conftest import EXCHANGE_MOUNT, HEALTH_WINDOW, BootedNode, wait_hub
from tests.vm.releases import newer_version, signed_release

pytestmark = [pytest.mark.timeout(2400), pytest.mark.scenario]

ROOT = "/opt/meshhub"
STATE = f"{ROOT}/update-state.json"
#: The node's own meshhub command, as the agent's user (who owns /opt/meshhub).
MESHHUB = f"runuser -u meshhub -- {ROOT}/current/bin/meshhub --config /etc/meshhub/node.toml"
#: An install under TCG on a busy two-core machine: venv, pip, byte-compiling.
INSTALL_LIMIT = 900
#: Waits inside the node for update-state.json to name VERSION at one of the STEPS
#: (argv: path, version, limit in seconds, steps...); prints the state.
WAIT_STATE = r"""
import json, sys, time
path, version, limit, steps = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
deadline = time.monotonic() + limit
while True:
    try:
        state = json.load(open(path))
    except (OSError, ValueError):
        state = {}
    if state.get("version") == version and (
            state.get("step") in steps or "failed" in state.get("message", "")):
        print(json.dumps(state)); sys.exit(0)
    if time.monotonic() > deadline:
        print(json.dumps(state)); sys.exit(1)
    time.sleep(0.2)
"""


@dataclass(frozen=True)
class Releases:
    """The running version and the two releases handed to the node."""

    running: str
    good: str
    broken: str

    def folder(self, version: str) -> str:
        """Where the node sees the release of ``version``."""
        return f"{EXCHANGE_MOUNT}/release-{version}"


@pytest.fixture(scope="module")
def releases(node_vm: BootedNode, wheelhouse: Path) -> Releases:
    """A newer release and a newer still whose portal cannot start, in the shared folder."""
    running = node_vm.image.version
    good, broken = newer_version(running, 1), newer_version(running, 2)
    for version, is_broken in ((good, False), (broken, True)):
        signed_release(wheelhouse, node_vm.exchange / f"release-{version}", version,
                       node_vm.image.admin_key, broken_portal=is_broken)
    for path in node_vm.exchange.rglob("*"):  # made private (mkdtemp, atomic writes)
        path.chmod(0o755 if path.is_dir() else 0o644)
    return Releases(running, good, broken)


def current(node: BootedNode) -> str:
    """The version /opt/meshhub/current points at (checked whole)."""
    target = node.sh(f"readlink {ROOT}/current").strip()
    version = target.removeprefix("venvs/")
    node.sh(f"test -e {ROOT}/venvs/{version}/.meshhub-complete")
    return version


def state(node: BootedNode) -> dict[str, object]:
    """The updater's update-state.json."""
    return json.loads(node.sh(f"cat {STATE}"))  # type: ignore[no-any-return]


def wait_state(node: BootedNode, version: str, *steps: str, limit: float) -> dict[str, object]:
    """The state once it names ``version`` at one of ``steps`` (or a failed install)."""
    result = node.vm.run(["python3", "-c", WAIT_STATE, STATE, version, str(limit),  # type: ignore[attr-defined]
                          *steps], timeout=limit + 60)
    assert result.returncode == 0, (f"the update of {version} did not reach {steps} within "
                                    f"{limit:.0f} s; state: {result.stdout}; agent's journal:\n"
                                    + journal(node, "meshhub-agent", 40))
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def journal(node: BootedNode, unit: str, lines: int = 2000) -> str:
    """``unit``'s journal of this boot."""
    return node.vm.run(f"journalctl -b --no-pager -o cat -n {lines} -u {unit}").stdout  # type: ignore[attr-defined]


def agent_version(node: BootedNode) -> str:
    """The version the running agent reports in its health document (its own package)."""
    from node.config.schema import settings_by_key

    listen = node.image.node_toml["agent"]["listen"]  # type: ignore[index]
    port = settings_by_key()["agent.port"].default
    health = json.loads(node.sh(f"busybox wget -q -O - http://{listen}:{port}/api/health"))
    return str(health["node"]["version"])


def portal_venv(node: BootedNode) -> set[str]:
    """The venvs the running portal has files mapped from (its C extensions)."""
    pid = node.sh("systemctl show -p MainPID --value meshhub-portal").strip()
    maps = node.sh(f"grep -o '{ROOT}/venvs/[^/]*/' /proc/{pid}/maps | sort -u")
    return {line.strip().removeprefix(f"{ROOT}/venvs/").rstrip("/")
            for line in maps.splitlines() if line.strip()}


def hub_status(node: BootedNode) -> int:
    """What nginx answers for the hub's front page, from the host."""
    port = node.vm.port  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as answer:
        return int(answer.status)


def import_release(node: BootedNode, folder: str) -> str:
    """``meshhub update import FOLDER`` on the node (it verifies, holds, asks for a check)."""
    node.mount_exchange()
    return node.sh(f"{MESHHUB} update import {folder}", timeout=300)


def test_a_power_cut_during_an_update_boots_on_the_version_it_ran(
        node_vm: BootedNode, releases: Releases) -> None:
    before = current(node_vm)
    said = import_release(node_vm, releases.folder(releases.good))
    assert f"holding release {releases.good}" in said, said
    # Pull the plug while pip installs into the new venv (a copy of the running one by
    # then: node/update/venv_copy.py). ("[/]": the pattern does not match this shell.)
    node_vm.sh(f"for i in $(seq {INSTALL_LIMIT * 5}); do grep -q '\"installing\"' {STATE} && "
               f"pgrep -f '[/]{ROOT[1:]}/venvs/{releases.good}/bin/python .*pip install' "
               ">/dev/null && exit 0; sleep 0.2; done; exit 1", timeout=INSTALL_LIMIT + 60)
    node_vm.boot_again(power_cut=True)

    assert current(node_vm) == before
    # The agent's update service finishes or undoes the interrupted update when it starts.
    after = wait_state(node_vm, releases.good, "idle", limit=300)
    assert after["step"] == "idle", after
    assert f"{releases.good}: interrupted before the switch" in str(after["message"]), after
    node_vm.sh(f"test ! -e {ROOT}/venvs/{releases.good}")  # the half-made venv is gone
    assert agent_version(node_vm) == before
    assert hub_status(node_vm) == 200
    assert "meshhub-firstboot:" not in journal(node_vm, "meshhub-firstboot")


def test_an_update_is_installed_with_pip_switched_to_and_checked(
        node_vm: BootedNode, releases: Releases) -> None:
    before = current(node_vm)
    assert before != releases.good
    import_release(node_vm, releases.folder(releases.good))
    done = wait_state(node_vm, releases.good, "done", "rolled-back", limit=INSTALL_LIMIT)
    assert done["step"] == "done" and done["previous"] == before, done

    assert current(node_vm) == releases.good
    installer = f"{ROOT}/venvs/{releases.good}/lib/python3.11/site-packages/" \
                f"meshhub-{releases.good}.dist-info/INSTALLER"
    assert node_vm.sh(f"cat {installer}").strip() == "pip"
    # Both restarted into the new venv: the agent's own package, the portal's files.
    assert agent_version(node_vm) == releases.good
    assert portal_venv(node_vm) == {releases.good}
    assert hub_status(node_vm) == 200
    assert f"update: now running {releases.good} (health check passed)" in \
        journal(node_vm, "meshhub-agent")
    node_vm.sh(f"test -e {ROOT}/venvs/{before}/.meshhub-complete")  # kept for a rollback


def test_a_release_failing_its_health_check_is_rolled_back(
        node_vm: BootedNode, releases: Releases) -> None:
    before = current(node_vm)
    import_release(node_vm, releases.folder(releases.broken))
    rolled = wait_state(node_vm, releases.broken, "done", "rolled-back",
                        limit=INSTALL_LIMIT + HEALTH_WINDOW)
    assert rolled["step"] == "rolled-back", rolled
    assert releases.broken in rolled["refused"], rolled  # type: ignore[operator]
    assert "the portal does not answer" in str(rolled["message"]), rolled
    # The broken portal really ran, and failed, before the rollback.
    assert "broken on purpose" in journal(node_vm, "meshhub-portal")
    assert f"{releases.broken} failed its health check" in journal(node_vm, "meshhub-agent")

    assert current(node_vm) == before
    # The portal was restarted from the old venv just before the agent's own restart.
    wait_hub(node_vm.vm, time.monotonic() + HEALTH_WINDOW, "after the rollback")
    assert agent_version(node_vm) == before
    assert portal_venv(node_vm) == {before}
    assert hub_status(node_vm) == 200
    status = node_vm.sh(f"{MESHHUB} update status")
    assert f"rolled back before, never again: {releases.broken}" in status, status
