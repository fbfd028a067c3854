"""Boot a node image in QEMU and reach inside it: ``image try``, the VM tests, the benches.

One :class:`VirtualMachine` is one QEMU process booting a node image: an
amd64 image by UEFI (Debian's ``ovmf``), an arm64 (Raspberry Pi) image on
QEMU's ``virt`` board with the kernel, initramfs and command line from its
boot partition (:mod:`provisioning.vm_arch`), with:

- TCG, or (amd64) KVM when a probe of a few seconds shows that KVM really runs a
  guest (on some hosts ``/dev/kvm`` opens but guests stop with an internal
  error or hang);
- the serial console copied to a log file (and, for ``image try``, to the
  terminal), so that a caller can wait for a line;
- user-mode networking with ``restrict=on``: the guest reaches nothing; only
  the forwarded hub port (host ``127.0.0.1:PORT`` -> guest port 80) comes in;
- ``mac80211_hwsim`` radios, passed to the guest through ``fw_cfg``
  (``opt/meshhub/radios``; the base image's ``meshhub-vm-radios`` unit loads
  the module with that many radios);
- the QEMU guest agent (Debian's ``qemu-guest-agent`` in the base image) on a
  virtio-serial channel: :meth:`VirtualMachine.run` runs a command inside as
  root and returns its exit status and output. It only starts when that
  virtual port exists, so a real node never runs it;
- QMP for a clean power-off and to read back the forwarded port when 0 was
  asked for (QEMU binds it itself: no port handed over);
- optionally, host folders shared read-only (``shares``: 9p, ``-virtfs``), which the
  guest mounts with ``mount -t 9p -o trans=virtio,ro TAG DIR``;
- optionally, more raw disk images (``disks``: virtio, after the image's own disk, each
  with a throwaway overlay so the host's file never changes): the radio tests bring
  their prepared checkout and venv as an ext4 image this way, which the guest mounts
  by label (block reads; 9p under TCG is far slower).

Everything lives in one temporary folder removed by :meth:`VirtualMachine.stop`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from provisioning.errors import ProvisionError
from provisioning.vm_arch import ARCHES, QEMU, image_arch, machine_args, pi_boot_files

OVMF_CANDIDATES = ("/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd")
QGA_PORT = "org.qemu.guest_agent.0"
#: Seconds to wait for one answer of the guest agent while a command runs.
QGA_TIMEOUT = 60.0
_ANSI = re.compile(r"\x1b\[[0-9;?=]*[A-Za-z]")


class VmError(ProvisionError, OSError):
    """The virtual machine could not be started or did not do what was asked."""


@dataclass(frozen=True)
class Result:
    """A command run inside the guest."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Result:
        """Self when the command succeeded; raise :class:`VmError` with its output if not."""
        if self.returncode != 0:
            raise VmError(f"in the VM, {' '.join(self.argv)} exited {self.returncode}: "
                          f"{(self.stderr or self.stdout).strip()[-800:]}")
        return self


def require_qemu(arch: str = "amd64") -> tuple[str, str | None]:
    """Paths of QEMU for ``arch`` and (amd64) the UEFI firmware; raise naming the Debian
    packages if missing. arm64 needs no firmware file: QEMU loads the image's kernel."""
    program, package = QEMU[arch]
    qemu = shutil.which(program)
    firmware = (next((f for f in OVMF_CANDIDATES if Path(f).exists()), None)
                if arch == "amd64" else "")
    missing = [pkg for pkg, found in ((package, qemu), ("ovmf", firmware)) if found is None]
    if missing:
        what = "QEMU and its UEFI firmware" if arch == "amd64" else "QEMU for arm64"
        raise VmError(f"image try needs {' and '.join(missing)} ({what}): "
                      f"sudo apt-get install {' '.join(missing)}")
    assert qemu
    return qemu, firmware or None


def check_image(path: Path) -> None:
    """Raise :class:`VmError` unless ``path`` is a disk image with a FAT boot partition."""
    from provisioning.customise.partitions import ImageLayoutError, find_boot_partition

    if not path.is_file():
        raise VmError(f"{path}: not found; give a node image built by 'meshhub-provision image "
                      "build'")
    try:
        find_boot_partition(path)
    except ImageLayoutError as exc:
        raise VmError(f"{exc}; image try boots images made by 'meshhub-provision image base' + "
                      "'image build'") from None


def kvm_works(qemu: str, firmware: str, seconds: float = 6.0) -> bool:
    """True when a KVM guest gets as far as the firmware's first console line in ``seconds``.

    Checked because ``/dev/kvm`` can open yet fail to run a guest (an internal
    error, or a hang at the firmware).
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        probe = subprocess.run([qemu, "-accel", "kvm", "-m", "128", "-display", "none",
                                "-nic", "none", "-monitor", "none", "-no-reboot",
                                "-bios", firmware, "-serial", "stdio"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=seconds,
                               check=False)
        output = probe.stdout
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout or b""
    return b"BdsDxe" in output and b"KVM internal error" not in output


class VirtualMachine:
    """A node image booted in QEMU; see the module docstring. Use as a context manager."""

    def __init__(self, image: str | os.PathLike[str], *, memory_mb: int = 1024, cpus: int = 2,
                 radios: int = 2, port: int = 0, snapshot: bool = False,
                 console: IO[str] | None = None, accel: str = "auto",
                 shares: Mapping[str, str | os.PathLike[str]] | None = None,
                 disks: Sequence[str | os.PathLike[str]] = (), arch: str | None = None) -> None:
        self.image = Path(image)
        if arch is not None and arch not in ARCHES:
            raise VmError(f"--arch {arch!r}: use one of {', '.join(ARCHES)}")
        #: amd64 or arm64: given, or read from the image's boot partition (amd64 if unsure).
        self.arch = arch or image_arch(self.image) or "amd64"
        if self.arch != "amd64" and accel == "kvm":
            raise VmError(f"KVM runs amd64 guests only here; an {self.arch} image runs under TCG")
        self.shares = {tag: Path(folder) for tag, folder in (shares or {}).items()}
        self.disks = [Path(disk) for disk in disks]
        self.memory_mb, self.cpus, self.radios = memory_mb, cpus, radios
        self.requested_port, self.snapshot, self.accel = port, snapshot, accel
        self.console_echo = console
        self.qemu, self.firmware = require_qemu(self.arch)
        check_image(self.image)
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.used_accel: str | None = None
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------
    def start(self) -> VirtualMachine:
        """Start QEMU; returns at once (wait with :meth:`wait_console` or :meth:`wait_agent`)."""
        self.workdir = Path(tempfile.mkdtemp(prefix="meshhub-vm-"))
        accel = self.accel
        if accel == "auto":
            accel = ("kvm" if self.firmware and kvm_works(self.qemu, self.firmware)
                     else "tcg")
        try:
            boot = pi_boot_files(self.image, self.workdir) if self.arch == "arm64" else None
        except OSError:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            raise
        self.used_accel = accel
        drive = f"file={self.image},format=raw,if=virtio,cache=unsafe"
        if self.snapshot:
            drive += ",snapshot=on"
        argv = [self.qemu, "-accel", accel, "-m", str(self.memory_mb), "-smp", str(self.cpus),
                "-nodefaults", *machine_args(self.arch, self.firmware, boot),
                "-display", "none", "-monitor", "none",
                "-no-reboot", "-drive", drive,
                "-serial", "stdio",
                "-qmp", f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off",
                "-chardev", f"socket,id=qga0,path={self.workdir / 'qga.sock'},server=on,wait=off",
                "-device", "virtio-serial",
                "-device", f"virtserialport,chardev=qga0,name={QGA_PORT}",
                "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:"
                           f"{self.requested_port}-:80",
                "-device", "virtio-net-pci,netdev=n0",
                "-device", "virtio-rng-pci",
                "-fw_cfg", f"name=opt/meshhub/radios,string={self.radios}"]
        for tag, folder in self.shares.items():
            path = str(folder).replace(",", ",,")  # QEMU's option syntax escapes commas
            argv += ["-virtfs", f"local,path={path},mount_tag={tag},security_model=none,"
                                "readonly=on"]
        for disk in self.disks:
            path = str(disk).replace(",", ",,")
            argv += ["-drive", f"file={path},format=raw,if=virtio,cache=unsafe,snapshot=on"]
        if accel == "kvm":
            argv += ["-cpu", "host"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read_console, daemon=True)
        self._reader.start()
        self.port = self._forwarded_port()
        return self

    def __enter__(self) -> VirtualMachine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 90.0) -> None:
        """Power off cleanly (ACPI), kill QEMU if it does not stop, remove the temp folder."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(OSError, VmError):
                    self.qmp("system_powerdown")
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.kill()
        finally:
            if self._reader is not None:
                self._reader.join(5)
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def kill(self) -> None:
        """Pull the plug: SIGKILL QEMU (a power cut for the guest)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def running(self) -> bool:
        """True while QEMU runs."""
        return self.proc is not None and self.proc.poll() is None

    # --- the console ---------------------------------------------------------------
    def _read_console(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        buffer = b""
        while True:
            chunk = self.proc.stdout.read1(4096)  # type: ignore[attr-defined]
            if not chunk:
                break
            if self.console_echo is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.console_echo.write(chunk.decode("utf-8", "replace"))
                    self.console_echo.flush()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if lines:
                with self._cond:
                    self._lines += [_ANSI.sub("", line.decode("utf-8", "replace")).strip("\r")
                                    for line in lines]
                    self._cond.notify_all()
        with self._cond:
            if buffer:
                self._lines.append(_ANSI.sub("", buffer.decode("utf-8", "replace")))
            self._cond.notify_all()

    @property
    def console(self) -> list[str]:
        """The console lines so far (escape sequences removed)."""
        with self._cond:
            return list(self._lines)

    def wait_console(self, predicate: Callable[[str], bool], timeout: float,
                     start: int = 0) -> tuple[int, str] | None:
        """The first console line from index ``start`` on matching ``predicate``, or None.

        Returns None at the timeout or when QEMU exits first.
        """
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self._lines):
                    if predicate(self._lines[index]):
                        return index, self._lines[index]
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0 or not self.running():
                    return None
                self._cond.wait(min(left, 1.0))

    # --- QMP -------------------------------------------------------------------------
    def qmp(self, command: str, arguments: dict[str, Any] | None = None,
            timeout: float = 10.0) -> Any:
        """Run one QMP command and return its ``return`` value."""
        assert self.workdir is not None
        path = self.workdir / "qmp.sock"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline or not self.running():
                raise VmError("QEMU did not open its QMP socket")
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            reader = sock.makefile("rb")
            json.loads(reader.readline())  # greeting
            for message in ({"execute": "qmp_capabilities"},
                            {"execute": command, **({"arguments": arguments} if arguments
                                                    else {})}):
                sock.sendall(json.dumps(message).encode() + b"\n")
                while True:
                    answer = json.loads(reader.readline())
                    if "event" not in answer:
                        break
                if "error" in answer:
                    raise VmError(f"QMP {message['execute']}: {answer['error'].get('desc')}")
            return answer.get("return")

    def _forwarded_port(self) -> int:
        text = self.qmp("human-monitor-command", {"command-line": "info usernet"})
        match = re.search(r"TCP\[HOST_FORWARD\]\s+\d+\s+127\.0\.0\.1\s+(\d+)", str(text))
        if not match:
            raise VmError(f"cannot find the forwarded hub port in QEMU's 'info usernet': {text}")
        return int(match.group(1))

    # --- the guest agent -------------------------------------------------------------
    def _qga(self, command: str, arguments: dict[str, Any] | None = None,
             timeout: float = 10.0) -> Any:
        assert self.workdir is not None
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.workdir / "qga.sock"))
            reader = sock.makefile("rb")
            token = secrets.randbelow(2**31)
            sock.sendall(json.dumps({"execute": "guest-sync",
                                     "arguments": {"id": token}}).encode() + b"\n")
            while True:  # skip answers left over from an earlier, abandoned exchange
                line = reader.readline()
                if not line:
                    raise VmError("the guest agent closed the channel")
                with contextlib.suppress(ValueError):
                    if json.loads(line.strip(b"\xff")).get("return") == token:
                        break
            sock.sendall(json.dumps({"execute": command, **({"arguments": arguments}
                                                            if arguments else {})}).encode()
                         + b"\n")
            answer = json.loads(reader.readline())
            if "error" in answer:
                raise VmError(f"guest agent {command}: {answer['error'].get('desc')}")
            return answer.get("return")

    def wait_agent(self, timeout: float) -> bool:
        """True once the guest agent answers (the guest is up to multi-user), False at timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running():
            try:
                self._qga("guest-ping", timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                return True
            except (OSError, VmError, ValueError):
                with self._cond:
                    self._cond.wait(0.5)  # a console line or half a second, whichever first
        return False

    def run(self, command: str | list[str], timeout: float = 60.0) -> Result:
        """Run ``command`` (a shell line, or argv) as root in the guest; return its result."""
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        # The agent answers within milliseconds on an idle host; a TCG guest on a loaded
        # one was seen taking over 10 s (QGA_TIMEOUT).
        started = self._qga("guest-exec", {"path": argv[0], "arg": argv[1:],
                                           "capture-output": True}, timeout=QGA_TIMEOUT)
        pid = started["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                status = self._qga("guest-exec-status", {"pid": pid}, timeout=QGA_TIMEOUT)
            except TimeoutError:  # asked again (guest-sync skips the late answer)
                status = {}
            if status.get("exited"):
                break
            if time.monotonic() > deadline:
                self.run(["/bin/kill", "-9", str(pid)], timeout=10)
                raise VmError(f"in the VM, {command!r} did not finish within {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        out = base64.b64decode(status.get("out-data", "")).decode("utf-8", "replace")
        err = base64.b64decode(status.get("err-data", "")).decode("utf-8", "replace")
        code = status.get("exitcode", 128 + status.get("signal", 0))
        return Result(tuple(argv) if not isinstance(command, str) else (command,), code, out, err)


__all__ = ["Result", "VirtualMachine", "VmError", "check_image", "kvm_works", "require_qemu"]
