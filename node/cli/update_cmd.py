"""``meshhub update status|check|pause|resume|import``: the autoupdater from a shell."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from node.cli.common import load_node_config
from node.errors import NodeError


class AgentUnreachable(NodeError, OSError):
    """The node's agent did not answer on its API port."""


def _agent(cfg: Any) -> str:
    host = cfg.agent.listen
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (a listen address, compared, not bound)
        host = "127.0.0.1"
    return f"http://{host}:{cfg.agent.port}/update/v1"


def _call(url: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the agent URL is built as http:// above
        url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http only
            return json.loads(response.read(1024 * 1024))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise AgentUnreachable(f"{url}: the agent does not serve updates; set "
                                   "update.enabled = true in node.toml and restart it") from None
        raise AgentUnreachable(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise AgentUnreachable(f"{url}: the agent is not reachable "
                               f"({getattr(exc, 'reason', exc)}); is 'meshhub agent' running?"
                               ) from None


@click.group()
def update() -> None:
    """Signed releases and the autoupdater (see docs/updates.md)."""


@update.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the running version, the release held, the update state and the last check."""
    doc = _call(_agent(load_node_config(ctx)) + "/status")
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    _echo_status(doc)


def _echo_status(doc: dict[str, Any]) -> None:
    state = doc["state"]
    click.echo(f"running {doc['running']}; holding release {doc['held'] or 'none'}; "
               f"updater: {state['step']}" + (f" ({state['message']})" if state["message"]
                                               else ""))
    paused = doc["paused"]
    if paused["paused"]:
        click.echo(f"PAUSED for the whole mesh by {paused['actor']}"
                   + (f": {paused['reason']}" if paused["reason"] else ""))
    when = (time.strftime("%Y-%m-%d %H:%M", time.localtime(doc["last_check_at"]))
            if doc["last_check_at"] else "never")
    click.echo(f"last check: {when}: {doc['last_result']}")
    if doc.get("next_check_at"):
        click.echo("next check: " + time.strftime("%Y-%m-%d %H:%M",
                                                  time.localtime(doc["next_check_at"])))
    for url, reason in sorted(doc.get("refusals", {}).items()):
        click.echo(f"  refused from {url}: {reason}")
    if state.get("refused"):
        click.echo(f"rolled back before, never again: {', '.join(state['refused'])}")


@update.command()
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the check (and an install with its health check) to finish.")
@click.option("--timeout", type=click.IntRange(1, 7200), default=900, show_default=True,
              help="Seconds to wait at most.")
@click.pass_context
def check(ctx: click.Context, wait: bool, timeout: int) -> None:
    """Ask the agent to look for a newer release now (even if paused, it says so)."""
    base = _agent(load_node_config(ctx))
    before = _call(base + "/status")["checks"]
    _call(base + "/check", "POST")
    if not wait:
        click.echo("check started; see 'meshhub update status'")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        doc = _call(base + "/status")
        if doc["checks"] > before and not doc["checking"]:
            _echo_status(doc)
            return
    raise click.ClickException(f"the check did not finish within {timeout} s; see "
                               "'meshhub update status'")


@update.command("import")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--no-check", is_flag=True, help="Do not ask the agent to check afterwards.")
@click.pass_context
def import_(ctx: click.Context, folder: Path, no_check: bool) -> None:
    """Hold the signed release in FOLDER here; the agent installs and mirrors it.

    The release is verified exactly as a node verifies one from the mesh
    (admin signatures from this node's trust anchors, every file's hash).
    """
    from node.identity import load_or_create_identity
    from node.update.setup import open_update_service

    cfg = load_node_config(ctx)
    service = open_update_service(cfg, node_key=load_or_create_identity(cfg.data_dir).public_key,
                                  agent_url=lambda: "")
    manifest = service.import_release(folder)
    click.echo(f"holding release {manifest.version} ({len(manifest.files)} files) in "
               f"{service.releases / str(manifest.version)}")
    if not no_check:
        try:
            _call(_agent(cfg) + "/check", "POST")
            click.echo("the agent is checking; see 'meshhub update status'")
        except AgentUnreachable as exc:
            click.echo(f"the agent was not told ({exc}); it finds the release at its next check")


def _set_pause(ctx: click.Context, paused: bool, actor: str, reason: str) -> None:
    from node.cli.store_cmd import node_hub
    from node.update.pause import set_pause

    with node_hub(ctx) as (store, _):
        state = set_pause(store, paused, actor, reason)
    word = "paused" if state.paused else "resumed"
    click.echo(f"updates {word} for the whole mesh by {state.actor}; every node follows as "
               "soon as replication brings it the entry")


_AS = click.option("--as", "actor", required=True, metavar="ADMIN",
                   help="The admin account acting (shown in the audit).")


@update.command()
@_AS
@click.option("--reason", default="", help="Why (shown to the other admins, at most 500 chars).")
@click.pass_context
def pause(ctx: click.Context, actor: str, reason: str) -> None:
    """Pause automatic updates on every node of the mesh (a signed, replicated entry)."""
    _set_pause(ctx, True, actor, reason)


@update.command()
@_AS
@click.option("--reason", default="", help="Why (shown to the other admins).")
@click.pass_context
def resume(ctx: click.Context, actor: str, reason: str) -> None:
    """Let the nodes of the mesh update again."""
    _set_pause(ctx, False, actor, reason)
