"""Benchmark: a whole node image, built and booted in QEMU (root; TCG; minutes).

Measures, and prints as ``name: value unit (target: ...; verdict; load)`` lines
(:class:`bench.measure.Report`):

- the Debian base build (``image base --arch ARCH``; skipped with ``--base IMG``);
- the node image build with a real wheelhouse (this checkout's wheel and its
  dependencies from the package index), for ARCH (amd64 by default), and
  ``customise``;
- from QEMU's start until the hub answers through nginx on the forwarded
  port (target: 60 s under TCG for amd64; arm64 is emulated instruction by
  instruction on this amd64 machine, so its boot is reported, not judged),
  and the first boot's own duration (from its unit's start and exit times,
  on the guest's clock);
- a second boot of the same disk (first boot does not run again) until the hub
  answers;
- the idle node's memory: ``free``'s used and available, each unit's
  ``MemoryCurrent``, and what is left of a 512 MB Pi Zero 2 W.

Exits non-zero when a figure misses its target. It boots one guest at a time;
on a shared machine run it under the machine's QEMU lock. The base build boots
nothing, so it can run on its own first (``--keep-base PATH --no-boot``, under
the machine's lock for heavy jobs only) and the boots after it (``--base PATH``),
so that the QEMU lock is never held by a build.

    sudo .venv/bin/python bench/vm.py [--arch amd64|arm64] [--base BASE.img |
                                      --keep-base PATH] [--no-boot] [--dir DIR]

arm64 (the Raspberry Pi image, booted on QEMU's virt board: docs/images.md)
takes about 20 minutes for its base at ``nice 19`` and is not timing-sensitive.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.images import make_registry
from bench.measure import Report
from provisioning.customise import customise
from provisioning.image import build_image
from provisioning.image.base import build_base
from provisioning.image.wheelhouse import PLATFORMS, build_wheelhouse
from provisioning.vm import VirtualMachine

MIB = 1024 * 1024
PI_ZERO_MB = 512
#: Boot until the hub answers through nginx, under TCG (issue 13).
BOOT_TARGET_S = 60.0
#: Give up on a boot after this long (a hung guest must not hang the benchmark).
BOOT_LIMIT_S = 1800.0
#: The node's own units, then the system's. qemu-guest-agent runs only in a VM (the
#: figures' reader), so it is reported but not counted as the node's.
UNITS = ("meshhub-agent", "meshhub-portal", "nginx", "systemd-journald", "systemd-udevd",
         "systemd-logind", "systemd-timesyncd", "dbus", "polkit", "cron",
         "qemu-guest-agent")


def hub_answers(port: int) -> bool:
    """True when nginx answers on the forwarded port with the hub (200)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            return answer.status == 200 and answer.headers.get("Server", "").startswith("nginx")
    except (urllib.error.URLError, OSError):
        return False


def boot_to_hub(vm: VirtualMachine) -> float:
    """Start ``vm`` and wait until its hub answers through nginx: seconds since QEMU started."""
    started = time.monotonic()
    vm.start()
    while not hub_answers(vm.port or 0):
        if not vm.running() or time.monotonic() - started > BOOT_LIMIT_S:
            raise SystemExit("the hub never answered; last console lines:\n"
                             + "\n".join(vm.console[-30:]))
        vm.wait_console(lambda _l: False, timeout=1.0)
    return time.monotonic() - started


def first_boot_seconds(vm: VirtualMachine) -> float:
    """How long the first-boot unit's script ran, from systemd's own timestamps."""
    show = vm.run("systemctl show meshhub-firstboot -p ExecMainStartTimestampMonotonic"
                  " -p ExecMainExitTimestampMonotonic").check().stdout
    stamps = dict(item.split("=", 1) for item in show.split())
    return (int(stamps["ExecMainExitTimestampMonotonic"])
            - int(stamps["ExecMainStartTimestampMonotonic"])) / 1e6


def idle_memory(vm: VirtualMachine, report: Report, arch: str) -> None:
    """The node's memory with nothing happening, whole and per unit."""
    vm.run("systemctl is-system-running --wait", timeout=900)
    vm.run("sleep 30", timeout=120)  # settled: nothing starting any more
    free = vm.run("free -b | awk '/^Mem:/ {print $3, $6, $7}'").check().stdout.split()
    used, cache, available = (int(value) / MIB for value in free)
    report.info("vm_idle_used", used, "MiB", "free's used (without buffers and cache)")
    report.info("vm_idle_buff_cache", cache, "MiB", "free's buff/cache")
    report.info("vm_idle_available", available, "MiB", "of 1024 MiB given to the guest")
    for unit in UNITS:
        value = vm.run(f"systemctl show -p MemoryCurrent --value {unit}").stdout
        if value.strip().isdigit():
            report.info(f"vm_memory_{unit.replace('-', '_')}", int(value) / MIB, "MiB",
                        "the unit's cgroup (its processes and their page cache)")
    report.at_least("vm_pi_zero_left", PI_ZERO_MB - used, "MiB", 0,
                    f"{PI_ZERO_MB} MB minus free's used; "
                    + ("an amd64 kernel and userland, so a Pi's own figure differs"
                       if arch == "amd64" else "the Pi image's arm64 kernel and userland on "
                       "QEMU's virt board (a Pi's firmware and drivers differ)"),
                    limit_text=f"of {PI_ZERO_MB} MB on a Pi Zero 2 W")


def main() -> int:
    """Build, boot twice and measure; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=("amd64", "arm64"), default="amd64",
                        help="the node's processor (arm64: the Raspberry Pi image)")
    parser.add_argument("--base", type=Path, help="a base for --arch made by 'image base' before")
    parser.add_argument("--keep-base", type=Path, metavar="PATH",
                        help="build the base here (and keep it) instead of a temporary file")
    parser.add_argument("--no-boot", action="store_true",
                        help="stop after the builds (no QEMU: no need for the QEMU lock)")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="meshhub-bench-vm-", dir=args.dir) as tmp:
        work = Path(tmp)
        base = args.base
        if base is None:
            started = time.monotonic()
            base = args.keep_base or work / "base.img"
            build_base(args.arch, base, progress=lambda _line: None)
            report.info("vm_base_build", time.monotonic() - started, "s",
                        "mmdebstrap, about 700 MB from Debian's mirror")
        started = time.monotonic()
        wheels = work / "wheelhouse"
        build_wheelhouse(Path(__file__).resolve().parents[1], wheels,
                         platforms=PLATFORMS[args.arch])
        built = build_image(base, work / "node.img", wheelhouse=wheels, arch=args.arch)
        registry = make_registry(work / "registry", ("elm-1",))
        customise(built.path, "elm-1", registry=registry, secrets=work / "registry" / "secrets")
        report.info("vm_node_image_build", time.monotonic() - started, "s",
                    "wheelhouse from the package index, image build, customise")
        if args.no_boot:
            return report.exit_code()

        with open(work / "console.log", "w", encoding="utf-8") as console:
            for name, note in (("vm_boot_to_hub", "first boot included"),
                               ("vm_second_boot_to_hub", "first boot skipped")):
                vm = VirtualMachine(built.path, memory_mb=1024, console=console, arch=args.arch)
                try:
                    seconds = boot_to_hub(vm)
                    if args.arch == "amd64":
                        report.at_most(name, seconds, "s", BOOT_TARGET_S, note,
                                       limit_text="under TCG")
                    else:
                        report.info(name, seconds, "s", f"{note}; arm64 emulated on amd64")
                    if name == "vm_boot_to_hub":
                        report.info("vm_first_boot", first_boot_seconds(vm), "s",
                                    "meshhub-firstboot's script")
                        idle_memory(vm, report, args.arch)
                finally:
                    vm.stop()
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
