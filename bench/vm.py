"""Benchmark: a whole node image, built and booted in QEMU (root; TCG; minutes).

Measures, and prints as ``name: value unit (target: ...)`` lines:

- the Debian base build (``image base --arch amd64``; skipped with ``--base IMG``);
- the node image build with a real wheelhouse (this checkout's wheel and its
  dependencies from the package index);
- from QEMU's start until the hub answers through nginx on the forwarded
  port (target: 60 s under TCG), and the first boot's own duration (from
  its unit's start and exit times);
- the idle node's memory: ``free``'s used and available, each unit's
  ``MemoryCurrent``, and what is left of a 512 MB Pi Zero 2 W.

    sudo .venv/bin/python bench/vm.py [--base BASE.img] [--dir DIR]
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
from provisioning.customise import customise
from provisioning.image import build_image
from provisioning.image.base import build_base
from provisioning.image.wheelhouse import PLATFORMS, build_wheelhouse
from provisioning.vm import VirtualMachine

MIB = 1024 * 1024
PI_ZERO_MB = 512
UNITS = ("meshhub-agent", "meshhub-portal", "nginx", "systemd-journald", "systemd-networkd",
         "dbus", "polkit", "qemu-guest-agent")


def line(name: str, value: float, unit: str, target: str = "none") -> None:
    """One result line."""
    print(f"{name}: {value:.1f} {unit} (target: {target})", flush=True)


def hub_answers(port: int) -> bool:
    """True when nginx answers on the forwarded port with the hub (200)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            return answer.status == 200 and answer.headers.get("Server", "").startswith("nginx")
    except (urllib.error.URLError, OSError):
        return False


def main() -> None:
    """Build, boot and measure; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, help="an amd64 base made by 'image base' before")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshhub-bench-vm-", dir=args.dir) as tmp:
        work = Path(tmp)
        base = args.base
        if base is None:
            started = time.monotonic()
            base = work / "base.img"
            build_base("amd64", base, progress=lambda _line: None)
            line("vm_base_build", time.monotonic() - started, "s", "none (700 MB download)")
        started = time.monotonic()
        wheels = work / "wheelhouse"
        build_wheelhouse(Path(__file__).resolve().parents[1], wheels,
                         platforms=PLATFORMS["amd64"])
        built = build_image(base, work / "node.img", wheelhouse=wheels)
        registry = make_registry(work / "registry", ("elm-1",))
        customise(built.path, "elm-1", registry=registry, secrets=work / "registry" / "secrets")
        line("vm_node_image_build", time.monotonic() - started, "s", "< 60 s")

        with open(work / "console.log", "w", encoding="utf-8") as console:
            vm = VirtualMachine(built.path, memory_mb=1024, console=console)
            started = time.monotonic()
            vm.start()
            try:
                while not hub_answers(vm.port or 0):
                    if not vm.running() or time.monotonic() - started > 1800:
                        raise SystemExit("the hub never answered; see console.log")
                    vm.wait_console(lambda _l: False, timeout=1.0)
                line("vm_boot_to_hub", time.monotonic() - started, "s", "<= 60 s under TCG")
                vm.run("systemctl is-system-running --wait", timeout=900)
                show = vm.run("systemctl show meshhub-firstboot -p ExecMainStartTimestampMonotonic"
                              " -p ExecMainExitTimestampMonotonic").check().stdout
                stamps = dict(item.split("=", 1) for item in show.split())
                firstboot = (int(stamps["ExecMainExitTimestampMonotonic"])
                             - int(stamps["ExecMainStartTimestampMonotonic"])) / 1e6
                line("vm_first_boot", firstboot, "s", "none (pip install + byte-compile)")
                # Idle: nothing happening for a while after everything started.
                vm.run("sleep 30", timeout=120)
                free = vm.run("free -b | awk '/^Mem:/ {print $3, $7}'").check().stdout.split()
                used, available = int(free[0]) / MIB, int(free[1]) / MIB
                line("vm_idle_used", used, "MiB", "none")
                line("vm_idle_available", available, "MiB", "none")
                for unit in UNITS:
                    value = vm.run(f"systemctl show -p MemoryCurrent --value {unit}").stdout
                    if value.strip().isdigit():
                        line(f"vm_memory_{unit.replace('-', '_')}", int(value) / MIB, "MiB")
                line("vm_pi_zero_left", PI_ZERO_MB - used, "MiB",
                     f"> 0 of {PI_ZERO_MB} MB (Pi Zero 2 W)")
            finally:
                vm.stop()


if __name__ == "__main__":
    main()
