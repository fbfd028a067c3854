"""``image base``: a Debian 12 base image built from Debian's packages alone.

Laid out like Raspberry Pi OS, so that ``image build``, ``customise`` and the
node's first boot treat it exactly like one: an MBR, a FAT32 boot partition
(``bootfs``, at 8 MiB, 512 MiB, mounted at ``/boot/firmware``) and an ext4
root (``rootfs``) after it. Steps (docs/images.md, "A Debian base image"):

1. check the tools, root, and that Debian's packages can be reached;
2. ``mmdebstrap --variant=minbase`` into a folder: the recipe's
   ``[packages].required`` plus ``[debian].system`` and the architecture's
   kernel and boot loader;
3. system files: fstab by PARTUUID, host name, DHCP on wired ports
   (systemd-networkd), simulated radios when a virtual machine asks for them;
4. the root file system with ``mkfs.ext4 -d`` and the boot file system with
   ``mkfs.vfat`` + ``mcopy``, each in a file of its own, then written into the
   image after ``sfdisk`` made the table: nothing is mounted, no loop device.

amd64 boots by UEFI: systemd-boot (Debian's ``systemd-boot-efi``) as
``EFI/BOOT/BOOTX64.EFI`` on the FAT partition, with the kernel and initrd
beside it, like a Pi's firmware finds its kernel on the same partition.
arm64 uses Debian's ``raspi-firmware`` (the Pi's own boot firmware, which
reads ``config.txt`` and ``cmdline.txt``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from node.runtime import PORTAL_OPTIMIZE_LEVEL, SKIP_IN_STDLIB
from provisioning.errors import ProvisionError
from provisioning.image.recipe import DEFAULT_RECIPE, Recipe, load_recipe
from provisioning.image.sparse import allocated_bytes, copy_range

ARCHES = ("amd64", "arm64")
MIB = 1024 * 1024
SECTOR = 512
BOOT_START = 8 * MIB  #: where Raspberry Pi OS puts bootfs today
BOOT_SIZE = 512 * MIB
ROOT_START = BOOT_START + BOOT_SIZE
#: Room left free on the root beyond the packages: the node's venvs, an update, data.
ROOT_FREE = 1024 * MIB
BOOT_MOUNT = "/boot/firmware"
BASE_INFO = "meshhub-base.txt"

#: Tools the build runs, and the Debian package each comes from.
TOOLS = {"mmdebstrap": "mmdebstrap", "mkfs.ext4": "e2fsprogs", "mkfs.vfat": "dosfstools",
         "mcopy": "mtools", "sfdisk": "fdisk", "e2fsck": "e2fsprogs", "fsck.fat": "dosfstools"}

#: Files added to the root file system: path -> (mode, content).
_RADIOS_SCRIPT = """#!/bin/sh
# Simulated radios for a virtual machine ('meshhub-provision image try --radios N'):
# QEMU passes N through fw_cfg; on real hardware nothing is there and nothing happens.
modprobe qemu_fw_cfg 2>/dev/null || true
f=/sys/firmware/qemu_fw_cfg/by_name/opt/meshhub/radios/raw
[ -r "$f" ] || exit 0
n=$(tr -dc 0-9 <"$f")
[ -n "$n" ] && [ "$n" -gt 0 ] || exit 0
exec modprobe mac80211_hwsim radios="$n"
"""
_RADIOS_UNIT = """# Simulated radios (mac80211_hwsim) when QEMU asks for them
# (see /usr/lib/meshhub/vm-radios).
[Unit]
Description=Simulated radios for a virtual machine (meshhub image try)
DefaultDependencies=no
After=systemd-modules-load.service
Before=network-pre.target meshhub-agent.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/meshhub/vm-radios

[Install]
WantedBy=sysinit.target
"""
_WIRED_NETWORK = """# Wired ports take an address by DHCP: a gateway's cable to the home router or a
# USB Ethernet adapter (eth0, usb0), or QEMU's user network in image try. Only
# physical ports: a virtual one has a kind (veth, ifb, vxlan, bridge, ...) and is left
# alone, as the meshhub agent's ifb-mh0 (CAKE's download side) and a lab's cables must
# be. Radios are left to the meshhub agent.
[Match]
Type=ether
Kind=!*

[Network]
DHCP=ipv4
LinkLocalAddressing=ipv6

[DHCPv4]
UseDomains=no
"""

#: networkd leaves alone the routes it did not make: babeld's, and the agent's
#: announcement and demoted default routes on a gateway's uplink (node.mesh.uplink).
#: By default it removes them whenever it configures a port (at its start or restart).
_NETWORKD_CONF = """[Network]
ManageForeignRoutes=no
"""


class BaseImageError(ProvisionError, OSError):
    """The base image could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class BuiltBase:
    """What ``image base`` wrote."""

    path: Path
    arch: str
    packages: tuple[str, ...]
    disk_id: str  #: MBR disk identifier (PARTUUIDs are ``<id>-01`` and ``<id>-02``)
    size: int
    allocated: int
    seconds: float


Progress = Callable[[str], None]


def base_packages(arch: str, recipe: Recipe | None = None) -> tuple[str, ...]:
    """Every Debian package the base for ``arch`` installs, in recipe order."""
    recipe = recipe or load_recipe(DEFAULT_RECIPE)
    if recipe.debian is None or arch not in recipe.debian.arch_packages:
        raise BaseImageError(f"{recipe.path}: no [debian.{arch}] table: this recipe cannot "
                             f"build a {arch} base")
    return recipe.debian.packages(arch, recipe.packages)


def check_tools(arch: str) -> None:
    """Raise naming the Debian packages to install when a tool the build runs is missing."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if arch != host_arch():
        if shutil.which("arch-test") is None:
            missing.append("arch-test")
        if not any(Path("/usr/bin").glob("qemu-aarch64*")):
            missing.append("qemu-user-static")
    if missing:
        raise BaseImageError(f"image base needs {', '.join(missing)}: sudo apt-get install "
                             f"{' '.join(missing)}")
    if arch != host_arch() and not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        raise BaseImageError("building an arm64 base here needs binfmt_misc for arm64: sudo "
                             "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && sudo "
                             "apt-get install binfmt-support qemu-user-static")


def host_arch() -> str:
    """This computer's Debian architecture name (amd64, arm64, ...)."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def check_reachable(mirror: str, suite: str, timeout: float = 20.0) -> None:
    """Raise :class:`BaseImageError` unless ``mirror`` serves ``suite``'s Release file."""
    url = f"{mirror}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (http(s) only)
            answer.read(64)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BaseImageError(f"cannot reach Debian's packages at {mirror} ({reason}): connect "
                             "this computer to the internet, or pass --mirror URL of a Debian "
                             "mirror you can reach") from None


def build_base(arch: str, out: str | os.PathLike[str], *, recipe: Recipe | None = None,
               mirror: str | None = None, progress: Progress = print) -> BuiltBase:
    """Build a Debian base image for ``arch`` at ``out``; see the module docstring.

    Needs root (mmdebstrap installs the packages in a chroot) and the
    internet (about 700 MB from Debian's mirror). A failed build leaves no
    ``out``; when mmdebstrap fails, its whole output stays beside it in
    ``OUT.mmdebstrap.log`` (:func:`mmdebstrap_log`), which the error names.
    """
    started = time.monotonic()
    if arch not in ARCHES:
        raise BaseImageError(f"--arch {arch!r}: use one of {', '.join(ARCHES)}")
    recipe = recipe or load_recipe(DEFAULT_RECIPE)
    packages = base_packages(arch, recipe)
    assert recipe.debian is not None
    debian = recipe.debian
    mirror = (mirror or debian.mirror).rstrip("/")
    out_path = Path(out)
    check_tools(arch)
    if os.geteuid() != 0:
        raise BaseImageError("image base needs root: mmdebstrap installs Debian's packages in a "
                             "chroot (nothing on your disks is mounted); run it with sudo")
    if not out_path.parent.is_dir():
        raise BaseImageError(f"{out_path.parent}: no such folder for --out")
    progress(f"checking that Debian's packages can be reached at {mirror}")
    check_reachable(mirror, debian.suite)

    disk_id = f"{secrets.randbits(32) | 1:08x}"
    from provisioning.image.build import verified_output

    with tempfile.TemporaryDirectory(prefix="meshhub-base-", dir=out_path.parent) as tmp, \
            _mounts_released(Path(tmp)):
        work = Path(tmp)
        root = work / "root"
        with verified_output(out_path) as partial:
            _debootstrap(arch, root, packages, debian.suite, mirror, debian.security_mirror,
                         debian.components[arch], disk_id, progress, mmdebstrap_log(out_path))
            progress("writing the system files (fstab, host name, networking)")
            bootfs = work / "bootfs"
            _system_files(root, disk_id)
            _boot_files(arch, root, bootfs, disk_id)
            progress("making the root file system (mkfs.ext4 -d)")
            root_fs = work / "root.ext4"
            _mkfs_ext4(root, root_fs)
            shutil.rmtree(root)
            progress("making the boot file system (mkfs.vfat, mcopy)")
            boot_fs = work / "boot.fat"
            _mkfs_fat(bootfs, boot_fs, disk_id)
            progress("writing the partition table and both partitions")
            _assemble(partial, boot_fs, root_fs, disk_id)
            progress("checking both file systems (e2fsck -fn, fsck.fat -n)")
    return BuiltBase(out_path, arch, packages, disk_id, out_path.stat().st_size,
                     allocated_bytes(out_path), time.monotonic() - started)


def mounts_under(folder: Path) -> list[Path]:
    """The mount points at or under ``folder`` (from /proc/self/mountinfo), deepest first."""
    base = os.path.realpath(folder)
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        # The kernel writes a space, tab, newline and backslash in a path as octal escapes.
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == base or point.startswith(base + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def release_mounts(folder: Path) -> list[Path]:
    """Unmount whatever is still mounted under ``folder``; the mount points released.

    mmdebstrap mounts /proc, /sys and /dev into the chroot while it installs and
    unmounts them when it ends; a build stopped hard (the process killed) can leave
    them. Removing the folder then would descend into the host's /dev, so every
    build releases them before its folder goes (lazily: a process still inside
    does not block it).
    """
    released = []
    for point in mounts_under(folder):
        if subprocess.run(["umount", "--lazy", str(point)], capture_output=True,
                          check=False).returncode == 0:
            released.append(point)
    left = mounts_under(folder)
    if left:
        raise BaseImageError(f"{', '.join(map(str, left))} still mounted after the build "
                             "and could not be unmounted: unmount it (sudo umount --lazy "
                             "PATH) before removing the folder")
    return released


@contextlib.contextmanager
def _mounts_released(folder: Path) -> Iterator[None]:
    """Release any mount under ``folder`` when the block ends, however it ends."""
    try:
        yield
    finally:
        release_mounts(folder)


def mmdebstrap_log(out: Path) -> Path:
    """Where mmdebstrap's whole output is written while it runs (kept only if it fails)."""
    return out.with_name(out.name + ".mmdebstrap.log")


#: Lines of mmdebstrap's output that say why a package failed (dpkg's own error can be
#: hundreds of lines above the last ones: "end of file on stdin at conffile prompt").
_CAUSES = ("dpkg: error", "dpkg: dependency problems", "E: ")


def _debootstrap(arch: str, root: Path, packages: tuple[str, ...], suite: str, mirror: str,
                 security: str, components: tuple[str, ...], disk_id: str,
                 progress: Progress, log: Path) -> None:
    comps = " ".join(components)
    sources = [f"deb {mirror} {suite} {comps}", f"deb {mirror} {suite}-updates {comps}",
               f"deb {security} {suite}-security {comps}"]
    argv = ["mmdebstrap", "--mode=root", "--format=directory", "--variant=minbase",
            f"--architectures={arch}", f"--components={','.join(components)}",
            f"--include={','.join(packages)}",
            # Kernel hooks (initramfs, raspi-firmware) read these while the packages install.
            "--essential-hook=mkdir -p \"$1/etc/default\" \"$1/boot/firmware\" && echo "
            f"'ROOTPART=PARTUUID={disk_id}-02' >\"$1/etc/default/raspi-firmware\"",
            "--aptopt=Acquire::Retries \"3\"",
            # /etc/default/raspi-firmware (written above) is also a conffile of raspi-firmware:
            # keep ours, or dpkg asks on a terminal there is none of and fails.
            "--dpkgopt=force-confold",
            *_initramfs_once(arch, root.parent),
            # The standard library byte-compiled for the portal's python -OO here, natively,
            # so the node's first boot finds it done (it takes minutes on a Pi or under TCG).
            "--customize-hook=chroot \"$1\" python3 -m compileall -q -o "
            f"{PORTAL_OPTIMIZE_LEVEL} -x '{SKIP_IN_STDLIB}' /usr/lib/python3.11 || true",
            suite, str(root), *sources]
    progress(f"mmdebstrap: Debian {suite} {arch}, {len(packages)} packages and their "
             "dependencies (about 700 MB to download; a few minutes)")
    started = time.monotonic()
    tail: list[str] = []
    causes: list[str] = []
    with open(log, "w", encoding="utf-8") as whole:
        whole.write(f"# {shlex.join(argv)}\n")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, errors="replace")
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                whole.write(line)
                line = line.rstrip()
                tail = [*tail, line][-15:]
                if line.lstrip().startswith(_CAUSES) or (
                        causes and causes[-1].startswith("dpkg: error") and line.startswith(" ")):
                    causes = [*causes, line.strip()][-8:]  # dpkg says why on the next line
                if line.startswith(("I: ", "E: ", "W: ")):
                    progress(f"  [{time.monotonic() - started:5.0f} s] {line}")
            returncode = proc.wait()
        except BaseException:
            _stop(proc)  # interrupted: mmdebstrap unmounts its chroot's /proc, /sys, /dev
            raise
    if returncode == 0:
        log.unlink()
        return
    text = "\n".join(tail)
    if any(s in text for s in ("Temporary failure resolving", "Could not resolve",
                               "Failed to fetch", "Unable to connect")):
        raise BaseImageError(f"cannot reach Debian's packages at {mirror} while downloading "
                             "(mmdebstrap says: "
                             f"{next(t for t in reversed(tail) if t.strip())}); check the "
                             f"network or pass --mirror (mmdebstrap's whole output: {log})")
    first = [c for c in causes if c not in tail]
    raise BaseImageError(f"mmdebstrap failed (exit {returncode}); its whole output is in {log}"
                         + ("; the errors in it:\n" + "\n".join(first) if first else "")
                         + f"\n... its last lines:\n{text}")


def _stop(proc: subprocess.Popen[str], grace: float = 30.0) -> None:
    """End ``proc`` with SIGTERM (its own clean-up runs), SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


#: Where initramfs-tools' command is kept aside while the packages install (dpkg-divert).
INITRAMFS_ASIDE = "/usr/sbin/update-initramfs.meshhub-deferred"


def _initramfs_once(arch: str, workdir: Path) -> list[str]:
    """mmdebstrap hooks that build the initramfs once, at the end, for a foreign ``arch``.

    Under qemu-user one initramfs takes ~20 minutes, and installing the
    packages built it twice: the kernel's postinst, then initramfs-tools'
    trigger for the hooks that later packages add (session 6). So while the
    packages install, ``update-initramfs`` is diverted (``dpkg-divert``) and a
    stand-in takes its place that only leaves an empty ``initrd.img-VERSION``
    for each kernel (raspi-firmware's kernel hook copies that file to the boot
    partition and fails without it); at the end the empty files go, the real
    command is put back and run once for every installed kernel (``-c -k all``),
    which also runs ``/etc/initramfs/post-update.d`` (raspi-firmware copies the
    real initrd to the boot partition there). A native build (amd64 here) keeps
    Debian's order. ``workdir``: a folder on this machine for the stand-in.
    """
    if arch == host_arch():
        return []
    command = "/usr/sbin/update-initramfs"
    stand_in = workdir / "update-initramfs-deferred"
    stand_in.write_text(
        "#!/bin/sh\n"
        "# meshhub's image build: the real update-initramfs runs once, at the end.\n"
        "for kernel in /boot/vmlinuz-*; do\n"
        "  [ -e \"$kernel\" ] || continue\n"
        "  initrd=\"/boot/initrd.img-${kernel#/boot/vmlinuz-}\"\n"
        "  [ -e \"$initrd\" ] || : >\"$initrd\"\n"
        "done\n"
        "exit 0\n")
    return [
        f"--essential-hook=chroot \"$1\" dpkg-divert --quiet --local --rename --divert "
        f"{INITRAMFS_ASIDE} --add {command} && install -m 755 {stand_in} \"$1{command}\"",
        f"--customize-hook=rm -f \"$1{command}\" && chroot \"$1\" dpkg-divert --quiet "
        f"--local --rename --divert {INITRAMFS_ASIDE} --remove {command} && "
        "find \"$1/boot\" -maxdepth 1 -name 'initrd.img-*' -size 0 -delete && "
        f"chroot \"$1\" {command} -c -k all",
    ]


#: How long systemd waits for the boot partition's device before it gives up and goes to
#: emergency mode. Its default, 90 s, is too short for a slow first boot (a Pi Zero with a
#: slow card, or QEMU without KVM on a busy host, where udev's module loading starved past
#: 90 s and the node never reached multi-user.target). The root is mounted by the kernel.
BOOT_DEVICE_TIMEOUT = "10min"


def _system_files(root: Path, disk_id: str) -> None:
    (root / "etc/fstab").write_text(
        "# meshhub base image (meshhub-provision image base): Raspberry Pi OS layout.\n"
        f"PARTUUID={disk_id}-02  /               ext4  defaults,noatime  0 1\n"
        f"PARTUUID={disk_id}-01  {BOOT_MOUNT}  vfat  "
        f"defaults,umask=0077,x-systemd.device-timeout={BOOT_DEVICE_TIMEOUT}  0 2\n",
        encoding="ascii")
    (root / "etc/hostname").write_text("meshhub\n", encoding="ascii")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tmeshhub\n"
                                    "::1\tlocalhost ip6-localhost ip6-loopback\n",
                                    encoding="ascii")
    (root / BOOT_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    files = {
        "usr/lib/meshhub/vm-radios": (0o755, _RADIOS_SCRIPT),
        "usr/lib/systemd/system/meshhub-vm-radios.service": (0o644, _RADIOS_UNIT),
        "etc/systemd/network/80-meshhub-wired.network": (0o644, _WIRED_NETWORK),
        "etc/systemd/networkd.conf.d/meshhub.conf": (0o644, _NETWORKD_CONF),
    }
    for rel, (mode, text) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
    links = {
        "etc/systemd/system/sysinit.target.wants/meshhub-vm-radios.service":
            "/usr/lib/systemd/system/meshhub-vm-radios.service",
        "etc/systemd/system/multi-user.target.wants/systemd-networkd.service":
            "/usr/lib/systemd/system/systemd-networkd.service",
        "etc/systemd/system/sockets.target.wants/systemd-networkd.socket":
            "/usr/lib/systemd/system/systemd-networkd.socket",
        # Nothing waits for an uplink: a node serves its neighbourhood without one.
        "etc/systemd/system/systemd-networkd-wait-online.service": "/dev/null",
        # The serial console shows the boot; a getty there would cut other writers off
        # (and root has no password: there is nothing to log in to).
        "etc/systemd/system/serial-getty@ttyS0.service": "/dev/null",
        # A node rarely has an uplink and never upgrades itself with apt (meshhub's own
        # updates are signed releases: docs/updates.md).
        "etc/systemd/system/apt-daily.timer": "/dev/null",
        "etc/systemd/system/apt-daily-upgrade.timer": "/dev/null",
    }
    for rel, target in links.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        path.symlink_to(target)
    # wpa_supplicant is there for testing a node's access point as a phone would;
    # the node itself never runs it.
    with contextlib.suppress(FileNotFoundError):
        (root / "etc/systemd/system/multi-user.target.wants/wpa_supplicant.service").unlink()
    for leftover in (root / "boot").glob("*.dpkg-bak"):
        leftover.unlink()
    for leftover in (root / "var/cache/apt/archives").glob("*.deb"):
        leftover.unlink()


def _boot_files(arch: str, root: Path, bootfs: Path, disk_id: str) -> None:
    bootfs.mkdir()
    firmware = root / BOOT_MOUNT.lstrip("/")
    if arch == "arm64":
        # raspi-firmware copied the Pi's firmware, kernel, initrd, config.txt and
        # cmdline.txt (root=PARTUUID from /etc/default/raspi-firmware) into /boot/firmware.
        if not (firmware / "cmdline.txt").exists():
            raise BaseImageError("raspi-firmware wrote no cmdline.txt into /boot/firmware; "
                                 "cannot make a bootable Raspberry Pi image")
        for item in firmware.iterdir():
            shutil.move(str(item), bootfs / item.name)
    else:
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        initrds = sorted((root / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise BaseImageError("the Debian kernel or its initrd is missing from /boot: "
                                 "mmdebstrap did not install linux-image-amd64")
        shutil.copyfile(kernels[-1], bootfs / "vmlinuz")
        shutil.copyfile(initrds[-1], bootfs / "initrd.img")
        efi = root / "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
        if not efi.exists():
            raise BaseImageError(f"{efi.relative_to(root)} missing: systemd-boot-efi was not "
                                 "installed")
        (bootfs / "EFI/BOOT").mkdir(parents=True)
        shutil.copyfile(efi, bootfs / "EFI/BOOT/BOOTX64.EFI")
        (bootfs / "loader/entries").mkdir(parents=True)
        (bootfs / "loader/loader.conf").write_text("default meshhub.conf\ntimeout 0\n"
                                                   "editor no\n", encoding="ascii")
        options = (f"root=PARTUUID={disk_id}-02 rootfstype=ext4 ro console=tty0 "
                   "console=ttyS0,115200 quiet systemd.show_status=yes")
        (bootfs / "loader/entries/meshhub.conf").write_text(
            f"title meshhub (Debian {kernels[-1].name.removeprefix('vmlinuz-')})\n"
            f"linux /vmlinuz\ninitrd /initrd.img\noptions {options}\n", encoding="ascii")
    (bootfs / BASE_INFO).write_text(
        f"meshhub base image: Debian 12 {arch}, built by 'meshhub-provision image base' on "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}.\nBuild a node image from it with "
        "'meshhub-provision image build --base THIS.img' (docs/images.md).\n",
        encoding="ascii")


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BaseImageError(f"{what} failed: {(result.stderr or result.stdout).strip()[-600:]}")


def _du_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def _mkfs_ext4(root: Path, image: Path) -> None:
    size = -(-int(_du_bytes(root) * 1.2 + ROOT_FREE) // MIB) * MIB
    with open(image, "wb") as out:
        out.truncate(size)
    _run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-U", str(uuid.uuid4()), "-d", str(root),
          str(image)], "mkfs.ext4 -d (the root file system)")


def _mkfs_fat(bootfs: Path, image: Path, disk_id: str) -> None:
    with open(image, "wb") as out:
        out.truncate(BOOT_SIZE)
    _run(["mkfs.vfat", "-F", "32", "-n", "bootfs", "-i", disk_id, str(image)],
         "mkfs.vfat (the boot file system)")
    items = [str(p) for p in sorted(bootfs.iterdir())]
    _run(["mcopy", "-s", "-i", str(image), *items, "::"],
         "mcopy (filling the boot file system)")


def _assemble(image: Path, boot_fs: Path, root_fs: Path, disk_id: str) -> None:
    root_size = root_fs.stat().st_size
    with open(image, "wb") as out:
        out.truncate(ROOT_START + root_size)
    table = (f"label: dos\nlabel-id: 0x{disk_id}\nunit: sectors\n\n"
             f"start={BOOT_START // SECTOR}, size={BOOT_SIZE // SECTOR}, type=c, bootable\n"
             f"start={ROOT_START // SECTOR}, size={root_size // SECTOR}, type=83\n")
    result = subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(image)],
                            input=table, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BaseImageError(f"sfdisk could not write the partition table: "
                             f"{result.stderr.strip()}")
    copy_range(boot_fs, 0, image, BOOT_START, BOOT_SIZE)
    copy_range(root_fs, 0, image, ROOT_START, root_size)


__all__ = ["ARCHES", "BaseImageError", "BuiltBase", "base_packages", "build_base",
           "check_reachable", "check_tools", "host_arch", "mmdebstrap_log"]
