"""A technician's Prometheus beside a lab: Debian's real ``prometheus`` in a namespace
of its own, cabled to one node of the lab, scraping every node's agent.

The observer's namespace ``mhl-<lab id>-obs`` has one veth link, ``eth0``, to the node
it is plugged into (its end ``obs0``, ``10.99.0.1/30``; the observer is ``10.99.0.2``
with its default route through the node). The node passes the observer's requests into
the mesh with its own mesh address as their source (an nftables ``snat`` in a table of
its own, inside the node's namespace), as a node's wired port would for a machine
plugged into it: the other nodes need no route back to the observer. Nothing is linked
to the host; Prometheus listens on ``127.0.0.1:9090`` of the observer's own namespace
(a port no other namespace shares), so only commands run inside it reach it.

The targets are those ``meshhub prometheus-config`` writes on the node (file-based
service discovery), and the rules those ``--rules`` writes; :meth:`Observer.close`
stops Prometheus and removes the namespace, the node's table and the files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.lab.netns import LabError, ip_batch, kill_namespace, run

if TYPE_CHECKING:
    from node.lab.lab import MeshLab

#: The observer's link to its node: node side, observer side (a /30 of their own).
NODE_SIDE, OBSERVER_SIDE = "10.99.0.1", "10.99.0.2"
#: Where Prometheus answers, inside the observer's namespace only.
LISTEN = "127.0.0.1:9090"
NAT_TABLE = "meshhub_observer"

PROMETHEUS_YML = """# Written by node/lab/observer.py for lab {lab}.
global:
  scrape_interval: {interval}
  scrape_timeout: {timeout}
  evaluation_interval: {interval}
rule_files:
  - {rules}
scrape_configs:
  - job_name: meshhub
    file_sd_configs:
      - files: ['{targets}']
        refresh_interval: {interval}
"""


class Observer:
    """One Prometheus watching one lab (see the module docstring)."""

    def __init__(self, lab: MeshLab, node: str, folder: Path) -> None:
        self.lab = lab
        self.node = lab.node(node)
        self.folder = folder
        self.ns = f"{lab.state.ns_prefix}obs"
        self.targets = folder / "meshhub-targets.json"
        self.rules = folder / "meshhub-rules.yml"
        self.process: subprocess.Popen[bytes] | None = None

    # --- building --------------------------------------------------------------------
    @classmethod
    def attach(cls, lab: MeshLab, node: str = "n1", *, interval: float = 5,
               folder: Path | None = None) -> Observer:
        """Cable a new observer to ``node``, write its targets and rules with the node's
        ``meshhub prometheus-config``, and start Prometheus; on failure remove it all."""
        if shutil.which("prometheus") is None:
            raise LabError("the observer needs 'prometheus' (Debian package: prometheus)")
        made = Path(tempfile.mkdtemp(prefix="meshhub-observer-", dir=folder))
        observer = cls(lab, node, made)
        try:
            observer._cable()
            observer.write_targets()
            observer._start(interval)
        except BaseException:
            observer.close()
            raise
        return observer

    def _cable(self) -> None:
        node_ns = self.node.ns
        run("ip", "netns", "add", self.ns)
        run("ip", "-n", node_ns, "link", "add", "obs0", "type", "veth", "peer", "name", "eth0",
            "netns", self.ns)
        ip_batch(node_ns, ["link set obs0 up", f"address add {NODE_SIDE}/30 dev obs0"])
        ip_batch(self.ns, ["link set lo up", "link set eth0 up",
                           f"address add {OBSERVER_SIDE}/30 dev eth0",
                           f"route add default via {NODE_SIDE}"])
        rules = (f"table ip {NAT_TABLE} {{\n chain postrouting {{\n"
                 "  type nat hook postrouting priority srcnat; policy accept;\n"
                 f'  ip saddr {OBSERVER_SIDE} oifname != "obs0" snat to {self.node.mesh_address}\n'
                 " }\n}\n")
        run("ip", "netns", "exec", node_ns, "nft", "-f", "-", stdin=rules)

    def write_targets(self) -> list[str]:
        """Run ``meshhub prometheus-config --output --rules`` on the node (as a technician
        does, and again when nodes join); the targets it listed."""
        from node.lab.lab import _program

        tmp_targets = self.folder / "targets.written"
        result = self.lab.exec(self.node.name, [
            *_program("meshhub"), "-c", self.node.config, "prometheus-config",
            "--output", str(tmp_targets), "--rules", str(self.rules)],
            capture_output=True, timeout=60)
        if result.returncode != 0:
            raise LabError(f"meshhub prometheus-config failed on {self.node.name}: "
                           f"{(result.stderr or result.stdout).strip()[-300:]}")
        tmp_targets.replace(self.targets)  # Prometheus sees a whole file, never a part
        groups = json.loads(self.targets.read_text(encoding="utf-8"))
        return [t for group in groups for t in group["targets"]]

    def _start(self, interval: float) -> None:
        config = self.folder / "prometheus.yml"
        config.write_text(PROMETHEUS_YML.format(
            lab=self.lab.state.id, interval=f"{round(interval * 1000)}ms",
            timeout=f"{round(max(1.0, interval * 0.8) * 1000)}ms", rules=self.rules,
            targets=self.targets),
            encoding="utf-8")
        check = subprocess.run(["promtool", "check", "config", str(config)],
                               capture_output=True, text=True, timeout=60, check=False)
        if check.returncode != 0:
            raise LabError(f"promtool refused {config}: {(check.stdout + check.stderr)[-400:]}")
        log = (self.folder / "prometheus.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "prometheus", f"--config.file={config}",
                 f"--storage.tsdb.path={self.folder / 'data'}", f"--web.listen-address={LISTEN}",
                 "--storage.tsdb.retention.time=1h"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    # --- asking ----------------------------------------------------------------------
    def api(self, path: str, timeout: float = 5, **query: str) -> Any:
        """``GET /api/v1/<path>?query`` from inside the observer; the ``data`` member, or
        None while Prometheus does not answer (starting) or answers an error."""
        url = f"http://{LISTEN}/api/v1/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        try:
            result = subprocess.run(["ip", "netns", "exec", self.ns, "curl", "-s", "-m",
                                     str(timeout), url], capture_output=True, text=True,
                                    timeout=timeout + 15, check=False)
        except subprocess.TimeoutExpired:
            return None
        try:
            answer = json.loads(result.stdout)
        except ValueError:
            return None
        return answer.get("data") if answer.get("status") == "success" else None

    def query(self, expression: str) -> dict[str, float] | None:
        """An instant query's samples by their ``instance`` label, or None (no answer)."""
        data = self.api("query", query=expression)
        if data is None:
            return None
        return {s["metric"].get("instance", ""): float(s["value"][1]) for s in data["result"]}

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of Prometheus's own log (for a failure's message)."""
        path = self.folder / "prometheus.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # --- removing --------------------------------------------------------------------
    def close(self) -> None:
        """Stop Prometheus, remove the namespace, the node's NAT table and the files
        (idempotent; safe after a failed :meth:`attach`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self.ns in run("ip", "netns", "list", check=False).stdout.split():
            kill_namespace(self.ns)
            deadline = time.monotonic() + 5
            while run("ip", "netns", "pids", self.ns, check=False).stdout.strip() and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            run("ip", "netns", "del", self.ns, check=False)
        with contextlib.suppress(LabError, subprocess.TimeoutExpired):
            run("ip", "netns", "exec", self.node.ns, "nft", "delete", "table", "ip", NAT_TABLE,
                check=False)
        shutil.rmtree(self.folder, ignore_errors=True)
