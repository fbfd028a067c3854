"""A real node image, built by this checkout and booted once per session in QEMU.

The fixtures, in order (each reusable by other VM tests, e.g. a radio lab):

- ``base_image``: ``image base --arch amd64`` (mmdebstrap from Debian's
  packages). Cached in ``$MESHHUB_VM_CACHE`` or ``/var/cache/meshhub-vm`` when
  that folder exists, keyed by the package list and the base builder's code;
  otherwise built into the session's temporary folder. ``$MESHHUB_VM_BASE``
  names a base built before instead.
- ``wheelhouse``: this checkout's wheel and its dependencies for amd64, from
  the package index (a real wheelhouse, as a release ships).

**arm64, opt-in**: with ``MESHHUB_VM_ARCH=arm64`` the same tests build and boot
the Raspberry Pi image (an arm64 base, aarch64 wheels, QEMU's ``virt`` board:
docs/images.md). Its base takes about 20 minutes under qemu-user, so pass one
built before in ``$MESHHUB_VM_BASE`` (or let the cache keep it). CI does not
set it: emulating arm64 on this machine would lengthen CI's run by much more
than the whole VM set takes now.
- ``node_image``: ``image build`` from both, then ``customise`` with a node
  registered in a signed registry (``provisioning.registry``). The card's
  node.toml gets one setting of the tests' own: a health window of
  :data:`HEALTH_WINDOW` seconds for updates (300 by default), so that a broken
  release is rolled back within a minute.
- ``node_vm``: the image booted in QEMU (:class:`provisioning.vm.VirtualMachine`),
  up to ``systemctl is-system-running --wait``; commands reach inside through
  the QEMU guest agent; a host folder (:attr:`BootedNode.exchange`) is shared
  read-only with the node for files the tests hand it (releases). Tests may boot
  the same disk again (:meth:`BootedNode.boot_again`); whichever machine runs
  at the end of the session is stopped (powered off) then.
"""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import IN_CI, require_root, require_tool
from tests.vmsupport import base_cache_key, base_folder, vm_cache_dir
from tests.vmsupport import base_image as cached_base_image

if TYPE_CHECKING:
    from provisioning.customise.fat import FatVolume

#: The node's processor: amd64 (CI), or arm64 when asked for (see the module docstring).
ARCH = os.environ.get("MESHHUB_VM_ARCH", "amd64")
#: Generous: TCG on a busy two-core machine; the tests measure, the bench reports.
BOOT_TIMEOUT = 1500.0
NODE = "elm-1"
#: ``update.health_window_seconds`` on the tests' card: long enough for a healthy
#: release's portal and agent to answer after their restart under TCG, short enough
#: that rolling back a broken one costs a minute.
HEALTH_WINDOW = 60
#: The 9p tag of the shared folder, and where the node mounts it.
EXCHANGE_TAG = "exchange"
EXCHANGE_MOUNT = "/mnt/exchange"
#: The node's own radio (phy0) and ten phones (the fair share of the uplink uses all).
RADIOS = 11


def require_vm_tools() -> None:
    """Skip on a laptop (fail in CI) without root, QEMU, ovmf or mmdebstrap."""
    require_root()
    if ARCH == "arm64":
        require_tool("qemu-system-aarch64", "mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk",
                     "debugfs", *(() if os.environ.get("MESHHUB_VM_BASE") else ("mmdebstrap",)))
        return
    require_tool("qemu-system-x86_64", "mmdebstrap", "/usr/share/ovmf/OVMF.fd", "mkfs.ext4",
                 "mkfs.vfat", "mcopy", "sfdisk", "debugfs")


@pytest.fixture(scope="session")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Debian base image for :data:`ARCH` made by ``image base`` (cached when a cache folder
    exists), or the one ``$MESHHUB_VM_BASE`` names."""
    if ARCH not in ("amd64", "arm64"):
        pytest.fail(f"MESHHUB_VM_ARCH={ARCH!r}: use amd64 or arm64")
    require_vm_tools()
    given = os.environ.get("MESHHUB_VM_BASE")
    if given:
        if not Path(given).is_file():
            pytest.fail(f"MESHHUB_VM_BASE={given}: no such file; build one with "
                        f"'meshhub-provision image base --arch {ARCH} --out FILE'")
        return Path(given)
    lines: list[str] = []
    try:
        return cached_base_image(base_folder(tmp_path_factory), ARCH, lines)
    except OSError as exc:
        pytest.fail(f"image base failed: {exc}\n" + "\n".join(lines[-20:]))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's wheel plus its dependencies for a node of :data:`ARCH`."""
    from provisioning.image.wheelhouse import PLATFORMS, build_wheelhouse

    out = tmp_path_factory.mktemp("wheelhouse")
    build_wheelhouse(Path(__file__).resolve().parents[2], out, platforms=PLATFORMS[ARCH])
    return out


@dataclass(frozen=True)
class NodeImage:
    """A customised node image and what the registry says about its node."""

    path: Path
    name: str
    public_key: str
    version: str
    node_toml: dict[str, object]
    #: The registry's admin key: it signs the tests' releases (tests/vm/releases.py).
    admin_key: Path


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
    built = build_image(base_image, work / "node.img", wheelhouse=wheelhouse, arch=ARCH)
    registry = make_registry(work / "registry", (NODE,))
    done = customise(built.path, NODE, registry=registry, secrets=work / "registry" / "secrets")
    node = ops.load_registry(registry).nodes[NODE].data
    card = FatVolume(built.path, done.boot.partition.start)
    toml = set_health_window(card)
    return NodeImage(built.path, NODE, node["public_key"], built.version,
                     tomllib.loads(toml.decode()), work / "registry" / "keys" / "ana.key")


def set_health_window(card: FatVolume) -> bytes:
    """Add ``update.health_window_seconds`` to the card's node.toml (and its line in the
    card's SHA256SUMS, which first boot checks); return the new node.toml."""
    import hashlib

    toml, sums = card.read("meshhub/node.toml"), card.read("meshhub/SHA256SUMS")
    assert toml is not None and sums is not None
    assert b"\n[update]\n" in toml, toml
    toml = toml.replace(b"\n[update]\n", b"\n[update]\nhealth_window_seconds = "
                        + str(HEALTH_WINDOW).encode() + b"\n", 1)
    lines = [f"{hashlib.sha256(toml).hexdigest()}  node.toml".encode()
             if line.endswith(b" node.toml") else line for line in sums.splitlines()]
    assert lines != sums.splitlines(), sums
    card.write("meshhub/node.toml", toml)
    card.write("meshhub/SHA256SUMS", b"\n".join(lines) + b"\n")
    return toml


@pytest.fixture(scope="session")
def node_vm(node_image: NodeImage,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[BootedNode]:
    """The node image booted (first boot) until the hub answers through nginx.

    What only the first boot shows (first boot's journal) is kept here. Tests
    that boot the node again (:meth:`BootedNode.boot_again`) replace
    :attr:`BootedNode.vm`; the machine running at the end is powered off here.
    """
    from provisioning.vm import VirtualMachine

    exchange = tmp_path_factory.mktemp("exchange")
    exchange.chmod(0o755)  # the node's users read what is handed over (9p keeps modes)
    log = node_image.path.with_suffix(".console.log")
    with open(log, "w", encoding="utf-8") as console:
        vm = VirtualMachine(node_image.path, memory_mb=1024, radios=RADIOS, console=console,
                            shares={EXCHANGE_TAG: exchange}, arch=ARCH)
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


def wait_hub(vm: object, deadline: float, context: str = "") -> None:
    """Wait until nginx hands out the hub on the forwarded port (pacing on the console, at
    most a second per try); fail the test with the units' journal at ``deadline``."""
    from provisioning.image.trial import hub_answers
    from provisioning.vm import VirtualMachine

    assert isinstance(vm, VirtualMachine)
    while not hub_answers(vm.port or 0, timeout=10):
        if time.monotonic() > deadline or not vm.running():
            journal = vm.run("journalctl -b --no-pager -o cat -n 40 -u meshhub-portal "
                             "-u nginx -u meshhub-agent -u meshhub-net", timeout=60)
            pytest.fail(f"the hub never answered through nginx; {context}; journal:\n"
                        f"{journal.stdout}")
        vm.wait_console(lambda _line: False, timeout=1.0)


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

    @property
    def exchange(self) -> Path:
        """The host folder shared read-only with the node (mounted by :meth:`mount_exchange`)."""
        return self.vm.shares[EXCHANGE_TAG]  # type: ignore[attr-defined, no-any-return]

    def mount_exchange(self) -> str:
        """Mount the shared folder in the node (once per boot); return where."""
        self.sh(f"mountpoint -q {EXCHANGE_MOUNT} || {{ mkdir -p {EXCHANGE_MOUNT} && "
                f"mount -t 9p -o trans=virtio,ro {EXCHANGE_TAG} {EXCHANGE_MOUNT}; }}")
        return EXCHANGE_MOUNT

    def boot_again(self, *, power_cut: bool = False) -> BootedNode:
        """End this machine and boot the same disk again, with the same radios, shares
        and console log, until it is up (:meth:`wait_up`); this node then follows the
        new machine, which the ``node_vm`` fixture powers off at the end.

        ``power_cut``: pull the plug (SIGKILL QEMU) instead of an ACPI power-off; the
        node's journal of the boot that ends is lost then, as on a real node (it is kept
        in RAM), otherwise it is kept first (:meth:`keep_journal`)."""
        from provisioning.vm import VirtualMachine

        vm = self.vm
        assert isinstance(vm, VirtualMachine)
        if power_cut:
            vm.kill()
        else:
            self.keep_journal()
        vm.stop()
        again = VirtualMachine(vm.image, memory_mb=vm.memory_mb, radios=vm.radios,
                               console=vm.console_echo, shares=vm.shares, disks=vm.disks,
                               arch=vm.arch)
        started = time.monotonic()
        again.start()
        self.vm = again
        # The node_vm fixture powers it off at the end: not a process this test leaked.
        from tests.conftest import HANDED_OVER_PIDS, HANDED_OVER_THREADS

        assert again.proc is not None and again._reader is not None
        HANDED_OVER_PIDS.add(again.proc.pid)
        HANDED_OVER_THREADS.add(again._reader)
        booted = BootedNode.wait_up(again, self.image, started, self.console_log)
        self.state, self.up_seconds = booted.state, booted.up_seconds
        return self

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
        # The portal is Type=simple: "running" comes before it listens.
        wait_hub(vm, started + BOOT_TIMEOUT, f"is-system-running: {state}")
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


__all__ = ["EXCHANGE_MOUNT", "IN_CI", "BootedNode", "NodeImage", "base_cache_key",
           "vm_cache_dir"]
