"""Whether this machine can hold the lab asked for: memory up front, processors as a warning.

The figures per node come from bench/scale.py on a 2-core machine (rounded up): an
agent's PSS, babeld and dnsmasq, the kernel's namespace and links, a portal. A lab
that would need more than :data:`MEMORY_SHARE` of the memory available now is refused
before anything is made, with the estimate. Processors are a softer limit: an idle
lab's babelds and agents wake with every hello, and a machine already busy answers
them late, so routes flap; ``lab up`` warns and suggests a longer hello interval.
"""

from __future__ import annotations

import os
from pathlib import Path

from node.errors import ConfigError

#: What one node needs, in MiB: its agent, babeld with dnsmasq, the kernel's namespace
#: and links, its portal, and a phone (busybox's DHCP client and its namespace).
NODE_AGENT_MIB = 32
NODE_DAEMONS_MIB = 4
NODE_KERNEL_MIB = 2
NODE_PORTAL_MIB = 45
NODE_PHONE_MIB = 1
#: Share of the memory available now a lab may plan to use (the rest: the host, caches).
MEMORY_SHARE = 0.8
#: An idle node's processor use, in cores: babeld and the agent's monitor for each hello
#: a second, and the agent's own timers.
NODE_CPU_PER_HELLO_HZ = 0.005
NODE_CPU_BASE = 0.002
#: Warn when the idle lab would take more than this share of the processors left free.
CPU_SHARE = 0.5


def node_mib(portal: bool, phones: bool) -> int:
    """Estimated memory of one lab node, in MiB."""
    return (NODE_AGENT_MIB + NODE_DAEMONS_MIB + NODE_KERNEL_MIB
            + (NODE_PORTAL_MIB if portal else 0) + (NODE_PHONE_MIB if phones else 0))


def available_mib(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """``MemAvailable`` in MiB, or None where the kernel does not say."""
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(nodes: int, portal: bool, phones: bool = False,
                 available: int | None = None) -> None:
    """Refuse (``ConfigError``) a lab whose estimate exceeds the share of ``available``
    MiB (default: this machine's ``MemAvailable`` now) it may use."""
    available = available_mib() if available is None else available
    if available is None:
        return
    each = node_mib(portal, phones)
    allowed = int(available * MEMORY_SHARE)
    if nodes * each <= allowed:
        return
    fits = allowed // each
    hint = "" if not portal else " or add --no-portal"
    raise ConfigError([f"--nodes: {nodes} nodes need about {nodes * each} MiB ({each} MiB "
                       f"each) but this machine has {available} MiB available, of which a "
                       f"lab may use {allowed} MiB; use --nodes {max(fits, 1)}{hint}"])


def idle_cores(nodes: int, hello_interval: float) -> float:
    """Estimated processor use of an idle lab, in cores."""
    return nodes * (NODE_CPU_PER_HELLO_HZ / hello_interval + NODE_CPU_BASE)


def slow_host_warning(nodes: int, hello_interval: float, cpus: int | None = None,
                      load: float | None = None) -> str | None:
    """A warning when this machine (``cpus``, its 1-minute ``load``) looks too slow for
    ``nodes`` nodes saying hello every ``hello_interval`` seconds, or None."""
    cpus = cpus or os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None else load
    free = max(cpus - load, 0.25)
    need = idle_cores(nodes, hello_interval)
    if need <= CPU_SHARE * free:
        return None
    longer = hello_interval
    while idle_cores(nodes, longer) > CPU_SHARE * free and longer < 16:
        longer *= 2
    advice = (f"try --hello {longer:g}" if longer > hello_interval and
              idle_cores(nodes, longer) <= CPU_SHARE * free else "use fewer --nodes")
    return (f"this machine may be too slow for {nodes} nodes saying hello every "
            f"{hello_interval:g} s: they need about {need:.2f} of its {cpus} processors "
            f"while idle, and {free:.2f} are free (load {load:.1f}); babeld may miss hellos "
            f"and routes flap; {advice}")
