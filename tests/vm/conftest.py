"""A real node image, built by this checkout and booted once per session in QEMU.

The fixtures, in order (each reusable by other VM tests, e.g. a radio lab):

- ``base_image``: ``image base --arch amd64`` (mmdebstrap from Debian's
  packages). Cached in ``$MESHHUB_VM_CACHE`` or ``/var/cache/meshhub-vm`` when
  that folder exists, keyed by the package list and the base builder's code;
  otherwise built into the session's temporary folder.
- ``wheelhouse``: this checkout's wheel and its dependencies for amd64, from
  the package index (a real wheelhouse, as a release ships).
- ``node_image``: ``image build`` from both, then ``customise`` with a node
  registered in a signed registry (``provisioning.registry``).
- ``node_vm``: the image booted in QEMU (:class:`provisioning.vm.VirtualMachine`),
  up to ``systemctl is-system-running --wait``; commands reach inside through
  the QEMU guest agent. Stopped (powered off) at the end of the session.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, require_root, require_tool
from tests.vmsupport import base_cache_key, base_folder, vm_cache_dir
from tests.vmsupport import base_image as cached_base_image

#: Generous: TCG on a busy two-core machine; the tests measure, the bench reports.
BOOT_TIMEOUT = 1500.0
NODE = "elm-1"


def require_vm_tools() -> None:
    """Skip on a laptop (fail in CI) without root, QEMU, ovmf or mmdebstrap."""
    require_root()
    require_tool("qemu-system-x86_64", "mmdebstrap", "/usr/share/ovmf/OVMF.fd", "mkfs.ext4",
                 "mkfs.vfat", "mcopy", "sfdisk", "debugfs")


@pytest.fixture(scope="session")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An amd64 Debian base image made by ``image base`` (cached when a cache folder exists)."""
    require_vm_tools()
    lines: list[str] = []
    try:
        return cached_base_image(base_folder(tmp_path_factory), "amd64", lines)
    except OSError as exc:
        pytest.fail(f"image base failed: {exc}\n" + "\n".join(lines[-20:]))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's wheel plus its dependencies for an amd64 node."""
    from provisioning.image.wheelhouse import PLATFORMS, build_wheelhouse

    out = tmp_path_factory.mktemp("wheelhouse")
    build_wheelhouse(Path(__file__).resolve().parents[2], out, platforms=PLATFORMS["amd64"])
    return out


@dataclass(frozen=True)
class NodeImage:
    """A customised node image and what the registry says about its node."""

    path: Path
    name: str
    public_key: str
    version: str
    node_toml: dict[str, object]


@pytest.fixture(scope="session")
def node_image(base_image: Path, wheelhouse: Path,
               tmp_path_factory: pytest.TempPathFactory) -> NodeImage:
    """``image build`` + ``customise`` for a node registered in a signed registry."""
    from bench.images import make_registry
    from provisioning.customise import customise
    from provisioning.customise.fat import FatVolume
    from provisioning.image import build_image
    from provisioning.registry import ops

    work = tmp_path_factory.mktemp("node")
    built = build_image(base_image, work / "node.img", wheelhouse=wheelhouse, arch="amd64")
    registry = make_registry(work / "registry", (NODE,))
    done = customise(built.path, NODE, registry=registry, secrets=work / "registry" / "secrets")
    node = ops.load_registry(registry).nodes[NODE].data
    toml = FatVolume(built.path, done.boot.partition.start).read("meshhub/node.toml")
    assert toml is not None
    return NodeImage(built.path, NODE, node["public_key"], built.version,
                     tomllib.loads(toml.decode()))


@pytest.fixture(scope="session")
def node_vm(node_image: NodeImage) -> Iterator[BootedNode]:
    """The node image booted (first boot) until the hub answers through nginx.

    What only the first boot shows (first boot's journal) is kept here. The
    module's last step boots the node a second time (it replaces
    :attr:`BootedNode.vm` and powers that machine off itself).
    """
    from provisioning.vm import VirtualMachine

    log = node_image.path.with_suffix(".console.log")
    with open(log, "w", encoding="utf-8") as console:
        vm = VirtualMachine(node_image.path, memory_mb=1024, radios=2, console=console)
        started = time.monotonic()
        vm.start()
        booted: BootedNode | None = None
        try:
            booted = BootedNode.wait_up(vm, node_image, started, log)
            booted.firstboot_journal = booted.sh(
                "journalctl -b --no-pager -o cat -u meshhub-firstboot")
            yield booted
        finally:
            if booted is not None:
                booted.keep_journal()
            vm.stop()
            if booted is not None and booted.vm is not vm:
                booted.vm.stop()  # type: ignore[attr-defined]


@dataclass
class BootedNode:
    """A booted node: the VM, its image, and how long the boot took."""

    vm: object  # provisioning.vm.VirtualMachine
    image: NodeImage
    console_log: Path
    up_seconds: float
    state: str
    #: ``journalctl -u meshhub-firstboot`` of the first boot (kept across the second boot).
    firstboot_journal: str = ""

    @classmethod
    def wait_up(cls, vm: object, image: NodeImage, started: float, log: Path) -> BootedNode:
        """Wait for the guest agent, ``systemctl is-system-running --wait``, the hub through
        nginx, then the access point."""
        from provisioning.vm import VirtualMachine

        assert isinstance(vm, VirtualMachine)
        if not vm.wait_agent(BOOT_TIMEOUT):
            pytest.fail(f"the node did not come up in {BOOT_TIMEOUT:.0f} s; console: "
                        + "\n".join(vm.console[-40:]))
        left = max(60.0, BOOT_TIMEOUT - (time.monotonic() - started))
        state = vm.run("systemctl is-system-running --wait", timeout=left).stdout.strip()
        # The portal is Type=simple: "running" comes before it listens. Wait for nginx
        # to hand out the hub (pacing on the console, at most a second per try).
        from provisioning.image.trial import hub_answers

        while not hub_answers(vm.port or 0, timeout=10):
            if time.monotonic() - started > BOOT_TIMEOUT or not vm.running():
                journal = vm.run("journalctl -b --no-pager -o cat -n 40 -u meshhub-portal "
                                 "-u nginx -u meshhub-agent -u meshhub-net", timeout=60)
                pytest.fail(f"the hub never answered through nginx; is-system-running: {state}"
                            f"; journal:\n{journal.stdout}")
            vm.wait_console(lambda _line: False, timeout=1.0)
        # The agent opens the access point last (after its API and the gate's ruleset):
        # wait for hostapd's AP on the radio, the last thing a node brings up.
        left = max(60.0, BOOT_TIMEOUT - (time.monotonic() - started))
        ap = vm.run(f"for i in $(seq {int(left)}); do iw dev wlan0 info 2>/dev/null | "
                    "grep -q 'type AP' && exit 0; sleep 1; done; exit 1", timeout=left + 30)
        if ap.returncode != 0:
            logs = vm.run("tail -n 30 /run/meshhub/hostapd.log; journalctl -b --no-pager "
                          "-o cat -n 30 -u meshhub-agent", timeout=60)
            pytest.fail(f"the access point never opened; is-system-running: {state}; "
                        f"hostapd's log and the agent's journal:\n{logs.stdout}")
        return cls(vm, image, log, time.monotonic() - started, state)

    def keep_journal(self) -> Path | None:
        """Write the running node's whole journal of this boot and its daemons' logs beside
        the console log (``node.journal-N.log``, one per boot; the node's journal is
        volatile, so it is gone once the machine stops): what a failed run is read from."""
        from provisioning.vm import VirtualMachine

        assert isinstance(self.vm, VirtualMachine)
        if not self.vm.running():
            return None
        boots = len(list(self.console_log.parent.glob("*.journal-*.log")))
        path = self.console_log.with_name(f"{self.console_log.stem.split('.')[0]}"
                                          f".journal-{boots + 1}.log")
        try:
            # The daemons the agent runs log to files in its runtime folder.
            result = self.vm.run("journalctl -b --no-pager -o short-monotonic; for f in "
                                 "/run/meshhub/*.log; do echo \"== $f\"; tail -n 200 \"$f\"; "
                                 "done", timeout=120)
        except (OSError, TimeoutError) as exc:  # VmError is an OSError; best effort
            path.write_text(f"could not read the journal: {exc}\n", encoding="utf-8")
        else:
            path.write_text(result.stdout + result.stderr, encoding="utf-8")
        return path

    def sh(self, command: str, timeout: float = 60.0) -> str:
        """Run ``command`` as root in the node; return its output; fail the test if it fails."""
        from provisioning.vm import VirtualMachine

        assert isinstance(self.vm, VirtualMachine)
        result = self.vm.run(command, timeout=timeout)
        assert result.returncode == 0, f"{command}: exit {result.returncode}: " \
                                       f"{result.stdout}{result.stderr}"
        return result.stdout


__all__ = ["IN_CI", "BootedNode", "NodeImage", "base_cache_key", "vm_cache_dir"]
