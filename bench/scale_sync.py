"""Replication at scale (issue 19 item 3): the ``sync`` part of ``bench/scale.py``.

One lab grid of ``--sync-nodes`` agents (``--no-portal``) at a real node's defaults
(``--timings defaults``: sync rounds every 60 s +- 20 %, health every 30 s, babeld
hello 4 s), and in it, in order:

1. **Idle bytes per link**: every node counts, with an nftables counter in its own
   namespace, the IP bytes it sends on its mesh links (``m-*``) by kind: the agent's
   API (TCP 9180: sync rounds, notifications, roaming gossip), babeld (UDP 6696) and
   mDNS (UDP 5353). Over ``--sync-window`` seconds of nothing happening, the sum over
   all nodes divided by the links and the window is the bytes per second one link
   carries (both directions together).
2. **200 authors at once**: every node appends one notice to its own store at the same
   moment (as its portal would, from another process: the agent notices the commit);
   seconds until every node holds all of them, and the agent bytes per link.
3. **The vector and digest exchange** with that many authors: ``POST /sync/v1/vector``
   and ``GET /sync/v1/digest`` asked of n1's agent from inside n1 (curl's own counts of
   what went each way; a neighbour's request also carries the ~280-byte signed header).
4. **A post across the diameter**: ``--sync-posts`` times, a notice appended on n1; the
   seconds until the node farthest from n1 (in hops) holds it, p50 and p95, and the
   arrival at every node against its hop distance (the per-hop cost of the model). Nodes
   the post has not reached after 120 s are named, with which of their neighbours hold
   it, and watched ``--sync-late`` seconds more: slow or stuck.
5. **A partition heals**: every link across the middle row of the grid is cut, each
   half gets ``--sync-partition-posts`` notices from different nodes, and once each half
   holds its own, the links are healed: seconds until every node holds every notice.

``--sync-skip`` leaves figures out (to fit a run into a time slot), ``--sync-logs`` keeps
every node's agent log. Arrival is read from each node's SQLite store directly
(read-only, from the host), so watching costs the nodes nothing and sees an entry the
moment it is committed.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import statistics
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.measure import cpu_seconds, percentile
from bench.meshlab import defaults_grid
from node.lab import MeshLab

#: Targets of issue 19 item 3.
IDLE_BYTES_TARGET = 200.0  # B/s per link, at the defaults
DIAMETER_P95_TARGET = 5.0  # s
COUNTED = {"agent": "tcp sport 9180", "agent_requests": "tcp dport 9180",
           "babeld": "udp dport 6696", "mdns": "udp dport 5353", "all": "",
           "agent_connections": "tcp dport 9180 tcp flags syn / syn,ack"}
#: Kinds counted in packets, not bytes: a connection's first packet (one request each).
PACKETS = {"agent_connections"}
#: Seconds of quiet before the posts across the diameter, to take the idle rates off.
ACROSS_IDLE_SECONDS = 20.0
TABLE = "meshhub_bench"

Report = Callable[[str, "float | str", str, str], None]
#: The figures, in the order they are taken (``--sync-skip`` names them).
FIGURES = ("idle", "storm", "vector", "across", "partition")
#: Seconds a post across the diameter is waited for before its laggards are named.
ACROSS_LIMIT = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sync`` part's options."""
    parser.add_argument("--sync-nodes", type=int, default=200, help="sync: the grid's size")
    parser.add_argument("--sync-settle", type=float, default=75.0,
                        help="sync: seconds after start-up before idle is counted (a round "
                             "interval and its jitter)")
    parser.add_argument("--sync-window", type=float, default=180.0,
                        help="sync: seconds of idle traffic counted (3 rounds at 60 s)")
    parser.add_argument("--sync-posts", type=int, default=10,
                        help="sync: posts sent across the diameter")
    parser.add_argument("--sync-partition-posts", type=int, default=5,
                        help="sync: notices posted in each half while partitioned")
    parser.add_argument("--sync-skip", default="",
                        help=f"sync: comma-separated figures to leave out, of: "
                             f"{', '.join(FIGURES)} (to fit a run in a time slot)")
    parser.add_argument("--sync-late", type=float, default=180.0,
                        help="sync: seconds a post that missed the 120 s limit is watched "
                             "for longer, to tell slow nodes from stuck ones")
    parser.add_argument("--sync-logs", type=Path, default=None,
                        help="sync: a folder to keep every node's agent log in (copied "
                             "before the lab goes)")


# --- the lab's stores, read from the host ---------------------------------------------
class Stores:
    """A read-only connection to every node's store: who holds which entry."""

    def __init__(self, mesh: MeshLab) -> None:
        self.conns = {name: sqlite3.connect(
            f"file:{Path(node.config).parent / 'data' / 'hub.sqlite3'}?mode=ro", uri=True,
            check_same_thread=False) for name, node in mesh.state.nodes.items()}

    def holders(self, entry_id: str, names: list[str] | None = None) -> set[str]:
        """The nodes (of ``names``) whose store holds ``entry_id`` now."""
        return {n for n in names or list(self.conns)
                if self.conns[n].execute("SELECT 1 FROM entries WHERE id = ?",
                                         (entry_id,)).fetchone()}

    def arrivals(self, ids: list[str], timeout: float, names: list[str] | None = None,
                 interval: float = 0.05, *, partial: bool = False) -> dict[str, float]:
        """Watch until every node (of ``names``) holds every entry of ``ids``: for each
        node, the monotonic time it was first seen holding all of them. After ``timeout``
        seconds: an error naming the nodes still waiting, or (``partial``) the arrivals
        so far."""
        pending = set(names or self.conns)
        seen: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        wanted = json.dumps(ids)
        while pending:
            now = time.monotonic()
            for name in sorted(pending):
                (count,) = self.conns[name].execute(
                    "SELECT count(*) FROM entries WHERE id IN (SELECT value FROM json_each(?))",
                    (wanted,)).fetchone()
                if count == len(ids):
                    seen[name] = now
            pending -= seen.keys()
            if pending and now > deadline and partial:
                break
            if pending and now > deadline:
                raise RuntimeError(f"{len(pending)} node(s) still lack the entries after "
                                   f"{timeout:g} s, e.g. {sorted(pending)[:5]}")
            time.sleep(interval)
        return seen

    def close(self) -> None:
        """Close every connection."""
        for conn in self.conns.values():
            conn.close()


def post(mesh: MeshLab, name: str, title: str) -> str:
    """Append a notice to node ``name``'s store as its portal would (another process
    than the agent, which notices the commit); the entry's id. Each notice's text is its
    own, as people's are (a renderer keeps its last answer: the same text every time
    would be rendered once, not once per post; since session 10 only portals render, and
    this lab has none)."""
    from node.config import load_config
    from node.hub import open_hub

    store, _hub = open_hub(load_config(Path(mesh.node(name).config)))
    try:
        wire = store.append("notice.post", {"title": title, "body": f"**{title}**: bench",
                                            "urgent": False,
                                            "pinned": False, "expires_at": None},
                            actor="bench")
    finally:
        store.close()
    return str(wire["id"])


# --- bytes on the mesh links ----------------------------------------------------------
def count_bytes(mesh: MeshLab) -> None:
    """Add the counting table to every node (outgoing IP bytes on ``m-*`` by kind)."""
    rules = "".join(f'  oifname "m-*" {match} counter comment "{kind}"\n'
                    for kind, match in COUNTED.items())
    text = (f"table inet {TABLE} {{\n chain out {{\n  type filter hook output priority 0; "
            f"policy accept;\n{rules} }}\n}}\n")
    for node in mesh.state.nodes.values():
        subprocess.run(["ip", "netns", "exec", node.ns, "nft", "-f", "-"], input=text,
                       text=True, check=True, capture_output=True, timeout=30)


def bytes_sent(mesh: MeshLab) -> dict[str, int]:
    """The counters' sums over every node, by kind (what the nodes themselves sent: sync
    is hop by hop, so nothing of it is forwarded)."""
    total = dict.fromkeys(COUNTED, 0)
    for node in mesh.state.nodes.values():
        out = subprocess.run(["ip", "netns", "exec", node.ns, "nft", "-j", "list", "chain",
                              "inet", TABLE, "out"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        for item in json.loads(out)["nftables"]:
            rule = item.get("rule")
            if rule:
                counter = next(e["counter"] for e in rule["expr"] if "counter" in e)
                kind = rule["comment"]
                total[kind] += counter["packets" if kind in PACKETS else "bytes"]
    return total


def agent_bytes(counted: Mapping[str, float]) -> float:
    """The agents' API bytes (answers and requests) among :func:`bytes_sent`'s counts."""
    return counted["agent"] + counted["agent_requests"]


def per_link_rate(before: dict[str, int], after: dict[str, int], links: int,
                  seconds: float) -> dict[str, float]:
    """Bytes per second one link carried (both directions), by kind."""
    return {k: (after[k] - before[k]) / links / seconds for k in before}


# --- the grid -------------------------------------------------------------------------
def hops_from(mesh: MeshLab, start: str) -> dict[str, int]:
    """Hop distance of every node from ``start`` over the lab's links (breadth first)."""
    distance, queue = {start: 0}, deque([start])
    while queue:
        here = queue.popleft()
        for there in mesh.neighbours(here):
            if there not in distance:
                distance[there] = distance[here] + 1
                queue.append(there)
    return distance


def middle_cut(mesh: MeshLab) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """The links across the grid's middle row, and the nodes of each half."""
    import math

    count = len(mesh.state.nodes)
    width = math.ceil(math.sqrt(count))
    rows = math.ceil(count / width)
    split = (rows // 2) * width  # nodes 1..split above the cut
    cut = [(a, b) for a, b in mesh.state.links if (int(a[1:]) <= split) != (int(b[1:]) <= split)]
    top = [f"n{i}" for i in range(1, split + 1)]
    bottom = [f"n{i}" for i in range(split + 1, count + 1)]
    return cut, top, bottom


# --- the part -------------------------------------------------------------------------
def run_sync(args: argparse.Namespace, root: Path, report: Report) -> None:
    """Every figure of the module docstring, in one lab."""
    count = args.sync_nodes
    started = time.monotonic()
    mesh = defaults_grid(count, root / "sync")
    report(f"sync_lab_ready_{count}", time.monotonic() - started, "s", "(set-up)")
    started_cpu = [cpu_seconds(node.pids["agent"]) for node in mesh.state.nodes.values()]
    report("sync_agent_cpu_at_ready", statistics.median(started_cpu), "s",
           f"(median of {count} agents; all together {sum(started_cpu):.0f} s of processor "
           "time: start-up and the mesh forming)")
    stores = Stores(mesh)
    links = len(mesh.state.links)
    skip = {f.strip() for f in args.sync_skip.split(",") if f.strip()}
    if skip - set(FIGURES):
        raise SystemExit(f"--sync-skip: unknown figure(s) {sorted(skip - set(FIGURES))}; "
                         f"known: {', '.join(FIGURES)}")
    try:
        count_bytes(mesh)
        if "idle" not in skip:
            measure_idle(mesh, args, report, links)
        if "storm" not in skip:
            authors_at_once(mesh, stores, report, links)
        if "vector" not in skip:
            vector_exchange(mesh, report)
        if "across" not in skip:
            across_diameter(mesh, stores, args, report)
        if "partition" not in skip:
            partition_heals(mesh, stores, args, report)
    finally:
        stores.close()
        if args.sync_logs is not None:
            keep_logs(mesh, args.sync_logs)
        mesh.down()


def agents_cpu_seconds(mesh: MeshLab) -> float:
    """Processor time every agent of the lab has used so far, together."""
    return cpu_seconds(*(node.pids["agent"] for node in mesh.state.nodes.values()))


def keep_logs(mesh: MeshLab, folder: Path) -> None:
    """Copy every node's agent log into ``folder`` (``n1.log``...), before the lab goes."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name, node in mesh.state.nodes.items():
        log = Path(node.config).parent / "agent.log"
        if log.exists():
            shutil.copyfile(log, folder / f"{name}.log")


def measure_idle(mesh: MeshLab, args: argparse.Namespace, report: Report, links: int
                 ) -> None:
    """1. Idle bytes per link at the defaults; the agent's idle B/s per link."""
    # Start-up's rounds (every node pulls at start and on each new neighbour) are not idle:
    # let one whole round interval (60 s + 20 %) pass before counting.
    time.sleep(args.sync_settle)  # a benchmark's settling window, not a wait for an event
    before, started = bytes_sent(mesh), time.monotonic()
    time.sleep(args.sync_window)  # the measuring window
    rate = per_link_rate(before, bytes_sent(mesh), links, time.monotonic() - started)
    report("sync_idle_bytes_per_link", agent_bytes(rate), "B/s",
           f"<= {IDLE_BYTES_TARGET:g} B/s (agent API, both directions, IP bytes)")
    report("babeld_idle_bytes_per_link", rate["babeld"], "B/s", "(context: hello 4 s)")
    report("mdns_idle_bytes_per_link", rate["mdns"], "B/s", "(context)")
    report("all_idle_bytes_per_link", rate["all"], "B/s", "(context)")


def authors_at_once(mesh: MeshLab, stores: Stores, report: Report, links: int) -> None:
    """2. Every node posts one notice at once: convergence time and bytes per link."""
    before = bytes_sent(mesh)
    started = time.monotonic()
    ids = [post(mesh, name, f"storm {name}") for name in mesh.state.nodes]
    posted = time.monotonic()
    seen = stores.arrivals(ids, timeout=600)
    done = max(seen.values())
    moved = bytes_sent(mesh)
    count = len(mesh.state.nodes)
    report(f"sync_{count}_authors_at_once_converged", done - posted, "s",
           f"(every node posted one notice within {posted - started:.1f} s)")
    report(f"sync_{count}_authors_at_once_agent_bytes_per_link",
           (agent_bytes(moved) - agent_bytes(before)) / links / 1024, "KiB",
           "(idle traffic included)")


def vector_exchange(mesh: MeshLab, report: Report) -> None:
    """3. The size of the vector and digest exchange with every node an author."""
    node = mesh.node("n1")
    base = f"http://{node.mesh_address}:9180/sync/v1"
    write = "%{size_request} %{size_upload} %{size_header} %{size_download}"
    digest = mesh.exec("n1", ["curl", "-s", "-o", "/dev/null", "-w", write,
                              f"{base}/digest"], capture_output=True, timeout=30).stdout
    vector = json.loads(mesh.exec("n1", ["curl", "-s", "-X", "POST", "-H",
                                         "Content-Type: application/json", "--data",
                                         '{"vector": {}}', f"{base}/vector"],
                                  capture_output=True, timeout=30).stdout)["vector"]
    body = json.dumps({"vector": vector, "port": 9180}, separators=(",", ":"))
    sizes = mesh.exec("n1", ["curl", "-s", "-o", "/dev/null", "-w", write, "-X", "POST", "-H",
                             "Content-Type: application/json", "--data-binary", "@-",
                             f"{base}/vector"], input=body, capture_output=True,
                      timeout=30).stdout
    # curl's size_request is the whole request (headers and body: size_upload is in it).
    d, v = [int(x) for x in digest.split()], [int(x) for x in sizes.split()]
    report("sync_digest_exchange", d[0] + d[2] + d[3], "B", "(request + response with "
           "headers, unsigned; a neighbour adds ~280 B of Meshhub-Auth)")
    report(f"sync_vector_exchange_{len(vector)}_authors", v[0] + v[2] + v[3], "B",
           f"(request {v[0]} B, of which the vector {v[1]} B, + response {v[2] + v[3]} B, "
           "with headers, unsigned)")


def across_diameter(mesh: MeshLab, stores: Stores, args: argparse.Namespace,
                    report: Report) -> None:
    """4. A post from n1 to the farthest node: p50/p95, arrival against hop count, and
    what one post costs: agent bytes per link, requests and processor time per node
    (the idle rates taken off)."""
    distance = hops_from(mesh, "n1")
    far = max(distance, key=lambda n: (distance[n], int(n[1:])))
    times: list[float] = []
    per_hop: dict[int, list[float]] = {}
    quiet, cpu_quiet, started = bytes_sent(mesh), agents_cpu_seconds(mesh), time.monotonic()
    time.sleep(ACROSS_IDLE_SECONDS)  # the idle rates, measured just before (a window)
    before, cpu_before = bytes_sent(mesh), agents_cpu_seconds(mesh)
    quiet_seconds = time.monotonic() - started
    idle_connections = (before["agent_connections"] - quiet["agent_connections"]) / quiet_seconds
    idle_cpu = (cpu_before - cpu_quiet) / quiet_seconds
    links = len(mesh.state.links)
    idle_bytes = (agent_bytes(before) - agent_bytes(quiet)) / links / quiet_seconds
    started = time.monotonic()
    for trial in range(args.sync_posts):
        entry = post(mesh, "n1", f"across {trial} {secrets.token_hex(2)}")
        posted = time.monotonic()
        seen = stores.arrivals([entry], timeout=ACROSS_LIMIT, partial=True)
        if len(seen) < len(stores.conns):
            seen.update(late_arrivals(mesh, stores, entry, posted, seen, args, report,
                                      distance))
        if far not in seen:
            raise RuntimeError(f"the post across the diameter never reached {far}")
        times.append(seen[far] - posted)
        for name, when in seen.items():
            per_hop.setdefault(distance[name], []).append(when - posted)
    after, cpu_after = bytes_sent(mesh), agents_cpu_seconds(mesh)
    elapsed = time.monotonic() - started
    nodes = len(mesh.state.nodes)
    connections = after["agent_connections"] - before["agent_connections"] \
        - idle_connections * elapsed
    report("sync_requests_per_post_per_node", connections / args.sync_posts / nodes, "",
           f"(agent connections, one request each; a spanning tree needs {(nodes - 1) / nodes:.2f};"
           f" idle {idle_connections:.1f}/s taken off)")
    report("sync_agent_cpu_per_post_per_node",
           (cpu_after - cpu_before - idle_cpu * elapsed) / args.sync_posts / nodes * 1000, "ms",
           f"(all agents' processor time while the posts crossed, idle "
           f"{idle_cpu * 100:.0f} % of a core taken off)")
    moved = agent_bytes(after) - agent_bytes(before)
    report("sync_bytes_per_post_per_link", (moved / links - idle_bytes * elapsed)
           / args.sync_posts / 1024, "KiB",
           f"(one notice, {len(stores.conns)} authors known; idle {idle_bytes:.0f} B/s a link "
           "taken off)")
    report(f"sync_post_across_{distance[far]}_hops_p50", statistics.median(times), "s",
           f"(from n1 to {far})")
    report(f"sync_post_across_{distance[far]}_hops_p95", percentile(times, 0.95), "s",
           f"<= {DIAMETER_P95_TARGET:g} s")
    slope = statistics.linear_regression(
        [d for d, values in per_hop.items() for _ in values],
        [v for values in per_hop.values() for v in values])
    report("sync_seconds_per_hop", slope.slope, "s",
           f"(least squares over every node's arrival; at 0 hops {slope.intercept:.2f} s)")


def late_arrivals(mesh: MeshLab, stores: Stores, entry: str, posted: float,
                  seen: dict[str, float], args: argparse.Namespace, report: Report,
                  distance: dict[str, int]) -> dict[str, float]:
    """The nodes a post had not reached after :data:`ACROSS_LIMIT` s: named, with what
    their neighbours held, then watched ``--sync-late`` s more (a node still lacking it
    then is stuck, not slow). Their arrivals."""
    late = sorted(set(stores.conns) - seen.keys(), key=lambda n: int(n[1:]))
    holding = {n: sorted(m for m in mesh.neighbours(n) if m in seen) for n in late}
    report("sync_post_late_nodes", " ".join(
        f"{n}({distance[n]} hops; neighbours holding it: {','.join(holding[n]) or 'none'})"
        for n in late), "", f"(not reached within {ACROSS_LIMIT:g} s; load "
        f"{Path('/proc/loadavg').read_text().split()[0]})")
    more = stores.arrivals([entry], timeout=args.sync_late, names=late, partial=True)
    for name in late:
        report(f"sync_post_late_{name}", (f"{more[name] - posted:.1f}" if name in more
                                          else "never"), "s after the post",
               f"(watched {args.sync_late:g} s more)")
    return more


def partition_heals(mesh: MeshLab, stores: Stores, args: argparse.Namespace,
                    report: Report) -> None:
    """5. Half the mesh partitioned, both halves post, the cut heals: convergence time."""
    cut, top, bottom = middle_cut(mesh)
    for a, b in cut:
        mesh.set_link(a, b, up=False)
    try:
        step_top = max(1, len(top) // args.sync_partition_posts)
        step_bottom = max(1, len(bottom) // args.sync_partition_posts)
        left = [post(mesh, n, f"top {n}") for n in top[::step_top][:args.sync_partition_posts]]
        right = [post(mesh, n, f"bottom {n}")
                 for n in bottom[::step_bottom][:args.sync_partition_posts]]
        stores.arrivals(left, timeout=300, names=top)
        stores.arrivals(right, timeout=300, names=bottom)
        if stores.holders(left[0], bottom) or stores.holders(right[0], top):
            raise RuntimeError("an entry crossed the cut: the partition did not hold")
    finally:
        healed = time.monotonic()
        for a, b in cut:
            mesh.set_link(a, b, up=True)
    seen = stores.arrivals(left + right, timeout=600)
    report(f"sync_partition_heal_{len(cut)}_links_converged", max(seen.values()) - healed,
           "s", f"({len(left)} + {len(right)} notices; babeld hello 4 s, rounds 60 s)")
