"""Simulated radios for the lab: the kernel's ``mac80211_hwsim``, one radio per namespace.

``mac80211_hwsim`` (in Debian's and Ubuntu's kernels, not in every container's) makes
``radios=N`` Wi-Fi radios that drive the real mac80211 stack: hostapd, wpa_supplicant
and 802.11s run on them unchanged. They share one medium: every radio hears every
other on the same channel (:mod:`node.lab.air` shapes who hears whom). A radio is a
``phy`` with one network interface; ``iw phy PHY set netns name NS`` moves both into a
namespace, and deleting the namespace gives them back to the host's.

The lab makes the radios it needs with the module's netlink commands
(:mod:`node.lab.hwsim`) inside a namespace of its own, ``mhl-ID-air``: its radios hear
each other and no other lab's, and each is destroyed with the namespace it ends up in.
The module is loaded (without radios of its own) when it is not loaded yet, and left
loaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from node.lab.netns import LabError, run

MODULE = "mac80211_hwsim"
#: The module refuses more radios than this (``radios`` parameter, kernel source).
MAX_RADIOS = 100
#: Where to read how to run the radio lab when this kernel has no hwsim.
WAY_OUT = ("run it on a Debian or Ubuntu machine, or inside a virtual machine with Debian's "
           "kernel (docs/lab.md, \"Radios\")")
TOOLS = {"iw": "iw", "hostapd": "hostapd", "wpa_supplicant": "wpasupplicant",
         "modprobe": "kmod"}


def hwsim_loaded(sys_root: Path = Path("/sys")) -> bool:
    """Whether ``mac80211_hwsim`` is loaded now."""
    return (sys_root / "module" / MODULE).exists()


def hwsim_available(sys_root: Path = Path("/sys")) -> bool:
    """Whether this kernel has ``mac80211_hwsim`` (loaded, or loadable with modprobe)."""
    if hwsim_loaded(sys_root):
        return True
    if shutil.which("modprobe") is None:
        return False
    return run("modprobe", "-n", "-q", MODULE, check=False).returncode == 0


def check_radio_host(radios: int, *, euid: int | None = None,
                     sys_root: Path = Path("/sys")) -> None:
    """Refuse, in one line each, what makes a radio lab impossible on this machine:
    no root, a kernel without hwsim, more radios than the module allows, a missing tool."""
    if (os.geteuid() if euid is None else euid) != 0:
        raise LabError("--radio needs root (it loads mac80211_hwsim and moves radios into "
                       "namespaces); run it with sudo")
    if radios > MAX_RADIOS:
        raise LabError(f"--radio: this lab needs {radios} radios but the lab makes at most "
                       f"{MAX_RADIOS} (mac80211_hwsim's own limit for radios=N); take fewer "
                       "--nodes, --radios 1 or no --phones")
    if not hwsim_available(sys_root):
        raise LabError(f"--radio: this machine's kernel has no {MODULE} (simulated radios); "
                       f"{WAY_OUT}")
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            raise LabError(f"--radio needs '{tool}' (Debian package: {package})")


def ensure_module() -> None:
    """Load ``mac80211_hwsim`` without radios of its own, unless it is loaded already (the
    node image loads it with the node's radios): the lab makes the radios it needs."""
    if not hwsim_loaded():
        run("modprobe", MODULE, "radios=0")


def make_radios(air_namespace: str, names: list[str]) -> None:
    """Make one radio per name inside ``air_namespace`` (the lab's own air)."""
    from node.lab.hwsim import in_namespace, new_radios

    in_namespace(air_namespace, lambda: new_radios(names))


def move_radio(air_namespace: str, phy: str, namespace: str, name: str) -> str:
    """Move radio ``phy`` (and its interface) from ``air_namespace`` into ``namespace``,
    renaming the interface ``name``; the interface's MAC address."""
    listed = run("ip", "netns", "exec", air_namespace, "ls",
                 f"/sys/class/ieee80211/{phy}/device/net").stdout.split()
    if not listed:
        raise LabError(f"radio {phy} has no network interface")
    run("ip", "netns", "exec", air_namespace, "iw", "phy", phy, "set", "netns", "name",
        namespace)
    if listed[0] != name:
        run("ip", "-n", namespace, "link", "set", listed[0], "name", name)
    return mac_address(namespace, name)


def mac_address(namespace: str, interface: str) -> str:
    """The MAC address of ``interface`` inside ``namespace``."""
    out = run("ip", "-n", namespace, "-o", "link", "show", interface).stdout
    words = out.split()
    try:
        return words[words.index("link/ether") + 1]
    except (ValueError, IndexError):
        raise LabError(f"{interface} in {namespace} has no MAC address: {out.strip()}"
                       ) from None


def hostapd_failure(log: str) -> str | None:
    """hostapd's own line saying why it refused its configuration or its radio, if any."""
    markers = ("Line ", "invalid", "Invalid", "Could not", "could not", "failed", "Failed",
               "Unsupported", "unknown")
    for line in log.splitlines():
        text = line.strip()
        if text and any(marker in text for marker in markers):
            return text
    return None
