"""Small helpers of the lab around ``ip`` and processes: run, batch, kill, reap.

Every command names its namespace explicitly (``ip -n NS`` or ``ip netns exec NS``):
nothing here ever touches the host's own interfaces, routes or ruleset.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence

from node.errors import NodeError

NS_PREFIX = "mhl-"


class LabError(NodeError, RuntimeError):
    """Something in the lab could not be done; the message says what to try."""


def run(*argv: str, check: bool = True, timeout: float = 20,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and wait; with ``check`` a failure is a :class:`LabError` with stderr."""
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                            check=False, input=stdin)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.returncode}")
    return result


def ip_batch(namespace: str | None, commands: Sequence[str]) -> None:
    """Run many ``ip`` commands inside ``namespace`` (None: this machine's own) in one
    process (``ip -batch``)."""
    if commands:
        where = ["-n", namespace] if namespace is not None else []
        run("ip", *where, "-batch", "-", stdin="\n".join(commands) + "\n",
            timeout=20 + len(commands) / 10)


def sysctls(namespace: str, settings: Sequence[str]) -> None:
    """Set kernel parameters inside ``namespace`` (one ``sysctl`` process)."""
    run("ip", "netns", "exec", namespace, "sysctl", "-qw", *settings)


def lab_namespaces() -> list[str]:
    """Every namespace on this machine that belongs to some lab."""
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(NS_PREFIX)]


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (reaping it if it is our exited child)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child and has exited."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def kill_namespace(namespace: str) -> None:
    """SIGKILL every process inside ``namespace``."""
    for pid in run("ip", "netns", "pids", namespace, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
