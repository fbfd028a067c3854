"""``meshhub sync now`` and ``meshhub sync status``: replication from a shell."""

from __future__ import annotations

import json
from typing import Any

import click

from node.cli.common import load_node_config


@click.group()
def sync() -> None:
    """Replication of the hub with neighbouring nodes (see docs/replication.md)."""


@sync.command()
@click.option("--peer", "peers", multiple=True, metavar="URL",
              help="Sync with this agent (http://host:port); repeatable. Default: sync.peers.")
@click.option("--no-files", is_flag=True, help="Exchange entries only, not library files.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def now(ctx: click.Context, peers: tuple[str, ...], no_files: bool, as_json: bool) -> None:
    """Run one sync round now and print what was exchanged.

    Pulls what this node lacks from each peer (the peers pull the rest
    themselves when their agent sees this node's vector) and fetches missing
    library files. Exits 1 if any peer failed.
    """
    from node.sync.setup import open_sync_service

    cfg = load_node_config(ctx)
    service = open_sync_service(cfg, peers=tuple(peers) or tuple(cfg.sync.peers))
    try:
        targets = service.peers()
        if not targets:
            raise click.UsageError("no peers: give --peer http://host:port or set sync.peers")
        rounds, files = service.sync_now(targets, files=not no_files)
    finally:
        service.close()
    if as_json:
        click.echo(json.dumps({"peers": [r.to_json() for r in rounds],
                               "files": files.to_json() if files else None}, indent=2))
    else:
        for r in rounds:
            line = f"{r.peer}: {r.outcome}"
            if r.accepted or r.duplicates:
                line += f", {r.accepted} new entries ({r.duplicates} already held)"
            if r.restored:
                line += f", {r.restored} missing bodies restored"
            if r.registry:
                line += f", registry {r.registry}"
            line += f", {r.bytes} bytes"
            click.echo(line + (f"\n  {r.error}" if r.error else ""))
        if files is not None:
            _echo_files(files.to_json())
    if any(r.outcome in ("failed", "local error") for r in rounds):
        ctx.exit(1)


def _echo_files(files: dict[str, Any]) -> None:
    click.echo(f"library files: {len(files['fetched'])} fetched, {len(files['skipped'])} "
               f"skipped, {len(files['not_found'])} on no peer, {len(files['failed'])} failed")
    for record in files["skipped"]:
        click.echo(f"  skipped {record['sha256'][:12]} {record['title']!r}: {record['reason']}")
    for record in files["failed"]:
        click.echo(f"  failed {record['sha256'][:12]} {record['title']!r}: {record['reason']}")


@sync.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the running agent's replication state: peers, back-offs, bytes, files.

    Asks the local agent (agent.listen:agent.port); if it is not running,
    shows this node's digest and configured peers from the database instead.
    """
    from node.agent_client import AgentError
    from node.sync.client import PeerClient

    cfg = load_node_config(ctx)
    host = cfg.agent.listen
    if host == "0.0.0.0":  # noqa: S104 (a listen address, compared, not bound)
        host = "127.0.0.1"
    try:
        doc = PeerClient(f"http://{host}:{cfg.agent.port}", timeout=5).status()
        source = "agent"
    except AgentError as exc:
        doc, source = _offline_status(cfg), f"database (agent not reachable: {exc.reason})"
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"node {doc['node']}: digest {doc['digest']}, {doc['count']} entries, "
               f"registry serial {doc['registry']}  [from the {source}]")
    click.echo(f"neighbours now: {', '.join(doc.get('peers_now', [])) or 'none'}")
    for peer in doc.get("peers", []):
        state = "ok" if not peer["failures"] else (
            f"{peer['failures']} failures, retry in {peer['backoff_seconds']} s: "
            f"{peer['last_error']}")
        click.echo(f"  {peer['url']}: {state}; {peer['accepted']} entries pulled, "
                   f"{peer['bytes_sent']} B sent, {peer['bytes_received']} B received")
    if doc.get("files"):
        _echo_files(doc["files"])


def _offline_status(cfg: Any) -> dict[str, Any]:
    from node.sync.setup import open_sync_service

    service = open_sync_service(cfg)
    try:
        return service.status()
    finally:
        service.close()
