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


@click.command()
@click.pass_context
def agent(ctx: click.Context) -> None:
    """Run the node agent: health sampling and the HTTP API (/metrics, /api/health).

    Listens on agent.listen:agent.port from node.toml (default 127.0.0.1:9180).
    Stops cleanly on SIGTERM or Ctrl-C, writing the health history to disk.
    """
    from node.agent import Agent

    cfg = load_node_config(ctx)
    Agent(cfg).run()


def _own_target(cfg: NodeConfig) -> str:
    host = cfg.agent.listen
    if host == "0.0.0.0":  # noqa: S104 (a listen address, compared, not bound)
        host = cfg.get("mesh.address") or "127.0.0.1"
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
        uplink_interface=cfg.get("clients.uplink_interface"), services=tuple(cfg.health.services))
    collector = Collector(settings, node_sources(cfg))
    time.sleep(0.3)  # CPU usage is measured between two readings
    doc = collector.sample()
    tracker = AlertTracker(Thresholds(disk_full_percent=cfg.health.disk_full_percent,
                                      too_hot_celsius=cfg.health.too_hot_celsius,
                                      low_voltage_volts=cfg.health.low_voltage_volts,
                                      uplink_required=bool(settings.uplink_interface)))
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
    uplink = net.get("uplink") or {}
    lines.append(f"uplink    {_or(uplink.get('interface'), missing='none')}: "
                 f"{ {True: 'present', False: 'DOWN', None: 'unknown'}[uplink.get('present')]}")
    lines.append(f"clients   DHCP leases {_or(clients.get('dhcp_leases'), missing='n/a')}, "
                 f"let through the gate {_or(clients.get('gate_allowed'), missing='no gate')}")
    services = doc.get("services") or {}
    if services:
        lines.append("services  " + ", ".join(f"{k} {v}" for k, v in services.items()))
    lines.append("mesh      " + ("see JSON" if doc.get("mesh") is not None
                                 else "not collected yet (babeld monitoring not installed)"))
    alerts = doc.get("alerts") or []
    lines.append(f"alerts    {len(alerts) or 'none'}")
    for alert in alerts:
        lines.append(f"  ! {alert['title']} ({alert['subject']}): {alert['detail']}")
        lines.append(f"    check: {alert['check']}")
    return lines


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
              help="Ask every known node (agent.peers and --node) and print a table.")
@click.option("--node", "nodes", multiple=True, metavar="HOST[:PORT]",
              help="Another node's agent to ask with --mesh (repeatable).")
@click.pass_context
def status(ctx: click.Context, as_json: bool, mesh: bool, nodes: tuple[str, ...]) -> None:
    """Print this node's health: from the running agent, or sampled now if it is not running.

    With --mesh, gather every known node's health document and print one line each.
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


def _targets(cfg: NodeConfig, extra: tuple[str, ...]) -> list[str]:
    from node.health.document import normalise_target

    found: list[str] = []
    for text in [*cfg.agent.peers, *extra]:
        try:
            target = normalise_target(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="agent.peers / --node") from None
        if target not in found:
            found.append(target)
    return found


def _mesh_table(cfg: NodeConfig, extra: tuple[str, ...], as_json: bool) -> None:
    from node.health.document import DocumentError, fetch_document

    rows: list[dict[str, Any]] = []
    for target in [_own_target(cfg), *_targets(cfg, extra)]:
        try:
            doc = fetch_document(target)
        except DocumentError as exc:
            rows.append({"target": target, "state": "down", "error": str(exc)})
            continue
        rows.append({"target": target, "state": "up", "name": doc["node"]["name"],
                     "version": doc["node"].get("version"),
                     "temperature": doc["soc"].get("temperature_celsius"),
                     "disk": doc["disk"].get("used_ratio"),
                     "clients": doc["clients"].get("dhcp_leases"),
                     "alerts": len(doc.get("alerts") or [])})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'node':<20} {'address':<22} {'state':<5} {'temp':>6} {'disk':>5} "
               f"{'clients':>7} {'alerts':>6} version")
    for row in rows:
        if row["state"] != "up":
            click.echo(f"{'?':<20} {row['target']:<22} down   {row['error']}")
            continue
        click.echo(f"{row['name'][:20]:<20} {row['target']:<22} up    "
                   f"{_or(row['temperature'], '{:.0f}°C'):>6} {_or(row['disk'], '{:.0%}'):>5} "
                   f"{_or(row['clients']):>7} {row['alerts']:>6} {row['version']}")


@click.command("prometheus-config")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="File to write (default: print to standard output).")
@click.option("--node", "nodes", multiple=True, metavar="HOST[:PORT]",
              help="Another node's agent to list besides agent.peers (repeatable).")
@click.pass_context
def prometheus_config(ctx: click.Context, output: str | None, nodes: tuple[str, ...]) -> None:
    """Write a Prometheus file_sd target list of every known node's agent.

    Point a scrape job's file_sd_configs at the file (see docs/health.md);
    Prometheus re-reads it when it changes, so re-run this when nodes join.
    """
    from node.atomic import atomic_write

    cfg = load_node_config(ctx, required=False)
    targets = [_own_target(cfg), *_targets(cfg, nodes)]
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
