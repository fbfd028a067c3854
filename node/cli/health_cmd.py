"""``meshhub agent``, ``meshhub status`` and ``meshhub prometheus-config``."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import click

from node.cli.common import load_node_config
from node.config import NodeConfig

log = logging.getLogger("meshhub.status")

#: ``status --mesh``: agents asked at once, and each one's connect/read timeout (seconds).
MESH_WORKERS = 8
MESH_TIMEOUT = 3.0
#: Neighbours and node addresses printed by ``status`` before "... and N more".
SHOWN_NEIGHBOURS = 32
SHOWN_NODES = 24


@click.command()
@click.pass_context
def agent(ctx: click.Context) -> None:
    """Run the node agent: health sampling and the HTTP API (/metrics, /api/health).

    Listens on agent.listen:agent.port from node.toml (default 127.0.0.1:9180),
    or on the socket systemd passes (socket activation, LISTEN_FDS).
    Stops cleanly on SIGTERM or Ctrl-C, writing the health history to disk.
    """
    from node.agent import Agent, systemd_listen_socket

    cfg = load_node_config(ctx)
    Agent(cfg, listen_socket=systemd_listen_socket()).run()


def _own_target(cfg: NodeConfig) -> str:
    host = cfg.agent.listen
    if host == "0.0.0.0":  # noqa: S104 (a listen address, compared, not bound)
        host = cfg.mesh.address or "127.0.0.1"
    return f"{host}:{cfg.agent.port}"


def _local_document(cfg: NodeConfig) -> tuple[dict[str, Any], str]:
    from node.health.document import DocumentError, fetch_document

    try:
        return fetch_document(_own_target(cfg)), "agent"
    except DocumentError as exc:
        log.info("%s; sampling directly", exc)
    from node.agent import node_sources
    from node.health import AlertTracker, Collector, CollectorSettings, Thresholds

    settings = CollectorSettings(
        node_name=cfg.node.name, data_dir=str(cfg.data_dir),
        leases_file=cfg.health.leases_file or str(cfg.data_dir / "dnsmasq.leases"),
        uplink_interface=cfg.clients.uplink_interface, services=tuple(cfg.health.services))
    collector = Collector(settings, node_sources(cfg))
    time.sleep(0.3)  # CPU usage is measured between two readings
    doc = collector.sample()
    tracker = AlertTracker(Thresholds(disk_full_percent=cfg.health.disk_full_percent,
                                      too_hot_celsius=cfg.health.too_hot_celsius,
                                      low_voltage_volts=cfg.health.low_voltage_volts,
                                      uplink_required=bool(settings.uplink_interface),
                                      link_degraded_cost=cfg.health.link_degraded_cost))
    tracker.update(doc)
    doc["alerts"] = [a.as_dict() for a in tracker.active.values()]
    return doc, "sampled now (the agent is not running)"


def _fmt_bytes(value: float | None) -> str:
    if value is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "?"


def _or(value: Any, fmt: str = "{}", missing: str = "n/a") -> str:
    return missing if value is None else fmt.format(value)


def describe(doc: dict[str, Any], source: str) -> list[str]:
    """The health document as lines for a terminal."""
    node, cpu, mem, disk = doc["node"], doc["cpu"], doc["memory"], doc["disk"]
    soc, net, clients = doc["soc"], doc["network"], doc["clients"]
    lines = [f"node      {node['name']}  version {node.get('version')}  "
             f"({_or(node.get('model'), missing='board unknown')}; {source})",
             f"uptime    {_or(doc.get('uptime_seconds'), '{:.0f} s')}",
             f"cpu       {_or(cpu.get('usage_ratio'), '{:.0%}')}  load "
             f"{_or(cpu.get('load1'), '{:.2f}')} {_or(cpu.get('load5'), '{:.2f}')} "
             f"{_or(cpu.get('load15'), '{:.2f}')}",
             f"memory    {_fmt_bytes(mem.get('used_bytes'))} used of "
             f"{_fmt_bytes(mem.get('total_bytes'))}",
             f"disk      {_or(disk.get('used_ratio'), '{:.0%}')} used, "
             f"{_fmt_bytes(disk.get('free_bytes'))} free ({disk.get('path')})",
             f"soc       {_or(soc.get('temperature_celsius'), '{:.1f} °C')}"
             f"  throttling: {_throttle_text(soc.get('throttling'))}"]
    for sensor in doc.get("sensors") or []:
        values = ", ".join(f"{k} {v:g}" for k, v in sensor["values"].items() if v is not None)
        state = values if sensor.get("available") else f"unavailable ({sensor.get('reason')})"
        lines.append(f"sensor    {sensor['name']} ({sensor.get('chip')}): {state}")
    lines.append(describe_uplink(net.get("uplink") or {}))
    lines.append(f"clients   DHCP leases {_or(clients.get('dhcp_leases'), missing='n/a')}, "
                 f"let through the gate {_or(clients.get('gate_allowed'), missing='no gate')}")
    services = doc.get("services") or {}
    if services:
        lines.append("services  " + ", ".join(f"{k} {v}" for k, v in services.items()))
    lines.extend(describe_mesh(doc.get("mesh")))
    alerts = doc.get("alerts") or []
    lines.append(f"alerts    {len(alerts) or 'none'}")
    for alert in alerts:
        lines.append(f"  ! {alert['title']} ({alert['subject']}): {alert['detail']}")
        lines.append(f"    check: {alert['check']}")
    return lines


def describe_uplink(uplink: dict[str, Any]) -> str:
    """The ``uplink`` line: present or down and, on a gateway whose agent checks it
    (node.mesh.uplink), whether the mesh is offered its default route and why not."""
    state = {True: "present", False: "DOWN", None: "unknown"}[uplink.get("present")]
    line = f"uplink    {_or(uplink.get('interface'), missing='none')}: {state}"
    if isinstance(uplink.get("announced"), bool):
        line += ("; default route offered to the mesh" if uplink["announced"]
                 else "; not offered to the mesh")
        if uplink.get("healthy") is False and uplink.get("reason"):
            line += f" ({uplink['reason']})"
        line += f"; withdrawn {uplink.get('withdrawals', 0)} time(s)"
    return line


def describe_mesh(mesh: Any) -> list[str]:
    """The mesh part of a health document (babeld's view) as lines for a terminal."""
    if not isinstance(mesh, dict):
        return ["mesh      no data (mesh.routing is off, or babeld is not running or not "
                "read yet)"]
    neighbours = [n for n in mesh.get("neighbours") or [] if isinstance(n, dict)]
    nodes = [a for a in mesh.get("nodes") or [] if isinstance(a, str)]
    usable = sum(1 for n in neighbours if _usable(n))
    babeld = f"; babeld {mesh['babeld']}" if isinstance(mesh.get("babeld"), str) else ""
    lines = [f"mesh      {usable} neighbour(s), {_or(mesh.get('routes'))} route(s), "
             f"{len(nodes)} other node(s) reachable{babeld}"]
    for n in neighbours[:SHOWN_NEIGHBOURS]:
        reach = n.get("reach_ratio")
        heard = "?" if not isinstance(reach, int | float) else f"{round(reach * 16)}"
        state = "" if _usable(n) else "  unusable (babeld no longer hears it)"
        lines.append(f"  {n.get('node') or '?'!s:<15} {n.get('address')} on "
                     f"{n.get('interface')}  cost {n.get('cost')} (rx {n.get('rxcost')}, "
                     f"tx {n.get('txcost')})  reach {heard}/16{state}")
    if len(neighbours) > SHOWN_NEIGHBOURS:
        lines.append(f"  ... and {len(neighbours) - SHOWN_NEIGHBOURS} more neighbour(s)")
    if nodes:
        more = f" ... and {len(nodes) - SHOWN_NODES} more" if len(nodes) > SHOWN_NODES else ""
        lines.append("  nodes: " + ", ".join(nodes[:SHOWN_NODES]) + more)
    return lines


def _usable(neighbour: dict[str, Any]) -> bool:
    cost = neighbour.get("cost")
    return isinstance(cost, int | float) and not isinstance(cost, bool) and cost < 0xFFFF


def _throttle_text(flags: dict[str, bool] | None) -> str:
    if flags is None:
        return "n/a"
    active = [k for k, v in flags.items() if v and not k.endswith("_occurred")]
    past = [k for k, v in flags.items() if v and k.endswith("_occurred")]
    return (", ".join(active) or "none now") + (f" (since boot: {', '.join(past)})" if past
                                                else "")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the health document as JSON.")
@click.option("--mesh", is_flag=True,
              help="Ask every reachable node (agent.peers and the nodes babeld knows) and "
                   "print a table.")
@click.option("--node", "nodes", multiple=True, metavar="HOST[:PORT]",
              help="With --mesh: ask only this node's agent besides this one (repeatable).")
@click.pass_context
def status(ctx: click.Context, as_json: bool, mesh: bool, nodes: tuple[str, ...]) -> None:
    """Print this node's health: from the running agent, or sampled now if it is not running.

    With --mesh, gather every reachable node's health document and print one line
    each: the nodes in agent.peers and every node the local agent's babeld routes to
    (or, with --node, only those), several at a time, each within a few seconds.
    """
    cfg = load_node_config(ctx, required=False)
    if mesh:
        _mesh_table(cfg, nodes, as_json)
        return
    doc, source = _local_document(cfg)
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    for line in describe(doc, source):
        click.echo(line)


def _targets(cfg: NodeConfig, extra: tuple[str, ...], peers: bool = True) -> list[str]:
    from node.health.document import normalise_target

    found: list[str] = []
    for text in [*(cfg.agent.peers if peers else ()), *extra]:
        try:
            target = normalise_target(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="agent.peers / --node") from None
        if target not in found:
            found.append(target)
    return found


def _row(target: str, doc: dict[str, Any] | None, error: str = "") -> dict[str, Any]:
    """One line of the ``status --mesh`` table (also its JSON form)."""
    if doc is None:
        return {"target": target, "state": "down", "error": error}
    mesh = doc.get("mesh")
    neighbours = (sum(1 for n in mesh.get("neighbours") or [] if _usable(n))
                  if isinstance(mesh, dict) else None)
    return {"target": target, "state": "up", "name": doc["node"]["name"],
            "version": doc["node"].get("version"), "time": doc.get("time"),
            "temperature": doc["soc"].get("temperature_celsius"),
            "disk": doc["disk"].get("used_ratio"),
            "clients": doc["clients"].get("dhcp_leases"),
            "neighbours": neighbours,
            "routes": mesh.get("routes") if isinstance(mesh, dict) else None,
            "alerts": len(doc.get("alerts") or [])}


def _fetch(target: str) -> tuple[dict[str, Any] | None, str]:
    from node.health.document import DocumentError, fetch_document

    try:
        return fetch_document(target, timeout=MESH_TIMEOUT), ""
    except DocumentError as exc:
        return None, str(exc)


def _ask(target: str) -> dict[str, Any]:
    return _row(target, *_fetch(target))


def gather(targets: list[str], workers: int = MESH_WORKERS) -> list[dict[str, Any]]:
    """Ask every target's agent, ``workers`` at a time; rows in the order of ``targets``."""
    if not targets:
        return []
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets))),
                            thread_name_prefix="meshhub-status") as pool:
        return list(pool.map(_ask, targets))


def mesh_rows(cfg: NodeConfig, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """This node's row, then one per other node: ``extra`` if given, else agent.peers and
    every node the local agent's mesh part names (babeld's routes, zeroconf's peers)."""
    from node.health.document import mesh_targets

    own = _own_target(cfg)
    own_doc, error = _fetch(own)
    targets = _targets(cfg, extra, peers=not extra)
    if not extra:
        targets += mesh_targets(own_doc, cfg.agent.port)
    mesh = (own_doc or {}).get("mesh")
    announced = mesh.get("announced") if isinstance(mesh, dict) else None
    ourselves = {own, *(f"{p.partition('/')[0]}:{cfg.agent.port}" for p in announced or []
                        if isinstance(p, str))}
    rows = [_row(own, own_doc, error)]
    seen = {(own_doc["node"]["name"], own_doc.get("time"))} if own_doc else set()
    for row in gather([t for t in dict.fromkeys(targets) if t not in ourselves]):
        if row["state"] == "up":
            if (row["name"], row["time"]) in seen:
                continue  # the same node under another address: same name, same sample
            seen.add((row["name"], row["time"]))
        rows.append(row)
    return rows


def _mesh_table(cfg: NodeConfig, extra: tuple[str, ...], as_json: bool) -> None:
    rows = mesh_rows(cfg, extra)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'node':<20} {'address':<22} {'state':<5} {'temp':>6} {'disk':>5} "
               f"{'clients':>7} {'neigh':>5} {'routes':>6} {'alerts':>6} version")
    for row in rows:
        if row["state"] != "up":
            click.echo(f"{'?':<20} {row['target']:<22} down   {row['error']}")
            continue
        click.echo(f"{row['name'][:20]:<20} {row['target']:<22} up    "
                   f"{_or(row['temperature'], '{:.0f}°C'):>6} {_or(row['disk'], '{:.0%}'):>5} "
                   f"{_or(row['clients']):>7} {_or(row['neighbours'], missing='-'):>5} "
                   f"{_or(row['routes'], missing='-'):>6} {row['alerts']:>6} {row['version']}")


@click.command("prometheus-config")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="File to write (default: print to standard output).")
@click.option("--node", "nodes", multiple=True, metavar="HOST[:PORT]",
              help="Another node's agent to list besides agent.peers (repeatable).")
@click.option("--rules", type=click.Path(dir_okay=False), default=None,
              help="Also write the mesh's alerting rules (node down or lost, link "
                   "degraded, disk full, too hot, undervoltage, uplink down, ...) to this "
                   "file, for prometheus.yml's rule_files.")
@click.pass_context
def prometheus_config(ctx: click.Context, output: str | None, nodes: tuple[str, ...],
                      rules: str | None) -> None:
    """Write a Prometheus file_sd target list of every known node's agent.

    Known nodes: this one, agent.peers, --node, and every node the local
    agent knows from the mesh (babeld's routes, zeroconf). Point a scrape
    job's file_sd_configs at the file (see docs/health.md); Prometheus
    re-reads it when it changes, so re-run this (e.g. from cron) as nodes join.
    """
    from node.atomic import atomic_write
    from node.health.document import mesh_targets

    if rules is not None:
        atomic_write(rules, prometheus_rules())
        click.echo(f"wrote the alerting rules to {rules}; in prometheus.yml:\n"
                   f"rule_files:\n  - '{rules}'", err=True)
    cfg = load_node_config(ctx, required=False)
    own_doc, _error = _fetch(_own_target(cfg))
    targets = [_own_target(cfg), *_targets(cfg, nodes), *mesh_targets(own_doc, cfg.agent.port)]
    targets = list(dict.fromkeys(targets))
    groups = [{"targets": targets,
               "labels": {"community": cfg.node.community}}]
    text = json.dumps(groups, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write(output, text)
    click.echo(f"wrote {len(targets)} target(s) to {output}; in prometheus.yml:\n"
               f"  - job_name: meshhub\n    file_sd_configs:\n      - files: ['{output}']",
               err=True)


def prometheus_rules() -> str:
    """The text of the mesh's Prometheus alerting rules, shipped with meshhub
    (``node/health/prometheus-rules.yml``, documented in docs/health.md)."""
    from importlib.resources import files

    return files("node.health").joinpath("prometheus-rules.yml").read_text(encoding="utf-8")
