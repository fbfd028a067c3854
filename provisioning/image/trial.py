"""``image try``: boot a node image in QEMU before flashing it (docs/images.md).

The console runs on the terminal; the node's hub is forwarded to
``http://127.0.0.1:PORT``. A first boot that fails is shown with the
journal's error lines and the machine is stopped, instead of leaving the
volunteer in front of a node that will never answer. Ctrl-C powers the
machine off and removes everything it made.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from provisioning.vm import VirtualMachine, VmError

FIRSTBOOT_FAILED = ("meshhub-firstboot: FAILED", "Failed to start meshhub-firstboot")
#: The units whose errors explain a node that does not come up.
JOURNAL_UNITS = ("meshhub-firstboot", "meshhub-agent", "meshhub-portal", "nginx")


def firstboot_failed(line: str) -> bool:
    """True for the console line that says the node's first boot failed."""
    return any(marker in line for marker in FIRSTBOOT_FAILED)


def hub_answers(port: int, timeout: float = 3.0) -> bool:
    """True when ``http://127.0.0.1:PORT/`` answers with any HTTP status below 500."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as answer:
            return answer.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def journal_errors(vm: VirtualMachine, lines: int = 30) -> str:
    """The journal's error lines of the node's units this boot (through the guest agent)."""
    units = " ".join(f"-u {u}" for u in JOURNAL_UNITS)
    result = vm.run(f"journalctl -b --no-pager -o cat -n {lines} {units} -p warning", timeout=30)
    return result.stdout.strip() or result.stderr.strip()


def try_image(image: str, *, radios: int, memory_mb: int, port: int, keep: bool,
              say: Callable[[str], None], boot_timeout: float = 600.0,
              arch: str | None = None) -> int:
    """Boot ``image`` until Ctrl-C; return the exit status for the command line.

    ``arch``: amd64 or arm64; None reads it from the image's boot partition
    (:func:`provisioning.vm_arch.image_arch`). An arm64 image's first boot under
    TCG takes several minutes: pass a longer ``boot_timeout``.
    """
    vm = VirtualMachine(Path(image), memory_mb=memory_mb, radios=radios, port=port,
                        snapshot=not keep, console=sys.stdout, arch=arch)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        vm.start()
        say(f"image try: {image} booting in QEMU ({vm.arch}, "
            f"{vm.used_accel.upper() if vm.used_accel else ''}"
            f", {memory_mb} MB, {radios} simulated radios); the hub will answer at "
            f"http://127.0.0.1:{vm.port}/ ; Ctrl-C powers it off"
            + ("" if keep else " (changes are thrown away: --keep-changes keeps them)"))
        started = time.monotonic()
        announced = False
        seen = 0
        while not stop.is_set() and vm.running():
            failed = vm.wait_console(firstboot_failed, timeout=2.0, start=seen)
            seen = max(seen, len(vm.console) - 1)
            if failed:
                say("image try: the node's first boot FAILED; the journal says:")
                with contextlib.suppress(VmError, OSError):
                    if vm.wait_agent(60):
                        say(journal_errors(vm))
                say("image try: stopping the machine; fix the image (docs/images.md, "
                    "'First boot') and build it again")
                return 1
            if not announced and hub_answers(vm.port or 0):
                announced = True
                say(f"image try: the hub answers at http://127.0.0.1:{vm.port}/ after "
                    f"{time.monotonic() - started:.0f} s")
            if not announced and time.monotonic() - started > boot_timeout:
                say(f"image try: no hub after {boot_timeout:.0f} s; the journal says:")
                with contextlib.suppress(VmError, OSError):
                    if vm.wait_agent(30):
                        say(journal_errors(vm))
                return 1
        if not vm.running() and not stop.is_set():
            say(f"image try: QEMU stopped (exit {vm.proc.returncode if vm.proc else '?'})")
            return 1
        say("image try: powering off...")
        return 0
    finally:
        vm.stop(timeout=60)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        say("image try: stopped; nothing left behind")
