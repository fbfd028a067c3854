"""``meshhub lab``: a whole neighbourhood in network namespaces, to test and to rehearse.

See docs/lab.md. Needs root, iproute2 and babeld; nothing in the lab is connected
to this machine's own network.
"""

from __future__ import annotations

import sys
import time

import click

from node.lab import TOPOLOGIES, MeshLab, find_lab
from node.lab.lab import TIMINGS, LabState

_LAB = click.option("--lab", "lab_id", default=None, metavar="ID", envvar="MESHHUB_LAB",
                    help="Which lab (default: the only one running).")
_STATE = click.option("--state", "state_dir", default=None, metavar="DIR",
                      help="The lab's state folder (default: /run/meshhub-lab/ID).")


def _open(lab_id: str | None, state_dir: str | None) -> MeshLab:
    return MeshLab(LabState.load(find_lab(state_dir, lab_id)))


@click.group()
def lab() -> None:
    """Run a neighbourhood of nodes in network namespaces on this machine."""


@lab.command("up")
@click.option("--nodes", "-n", type=click.IntRange(1, 200), default=5, show_default=True)
@click.option("--topology", "-t", type=click.Choice(TOPOLOGIES), default="line",
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random topology (the same seed gives the same links).")
@click.option("--phones", is_flag=True, help="Add a phone namespace on each node's access point.")
@click.option("--hello", type=click.FloatRange(0.5, 60), default=None,
              help="babeld hello interval on the lab's links, in seconds [default: 1; 4 "
                   "with --radio, babeld's own for a wireless interface].")
@click.option("--no-portal", is_flag=True, help="Start only the agents (faster, less memory).")
@click.option("--wait", type=float, default=90, show_default=True,
              help="Seconds to wait until every agent answers and routes connect all nodes "
                   "(0: do not wait).")
@click.option("--radio", is_flag=True,
              help="Simulated radios (mac80211_hwsim) instead of cables: hostapd, 802.11s "
                   "and phones with wpa_supplicant (docs/lab.md, \"Radios\").")
@click.option("--radios", type=click.IntRange(1, 2), default=1, show_default=True,
              help="With --radio: radios per node (1: access point and mesh share one; "
                   "2: one each).")
@click.option("--timings", type=click.Choice(TIMINGS), default="lab", show_default=True,
              help="lab: health samples every 5 s and sync rounds every 10 s; defaults: a "
                   "real node's node.toml defaults (30 s and 60 s).")
@click.option("--uplinks", default="", metavar="NODES",
              help="Nodes cabled to the lab's internet (an isp namespace with a web server "
                   "at 198.18.0.80), comma-separated, each with its clients.uplink_cost "
                   "after '=' if not 0: --uplinks n1,n2=2048 (docs/uplink.md).")
@_LAB
@_STATE
def lab_up(nodes: int, topology: str, seed: int, phones: bool, hello: float | None, no_portal: bool,
           wait: float, radio: bool, radios: int, timings: str, uplinks: str,
           lab_id: str | None, state_dir: str | None) -> None:
    """Build the lab: namespaces n1..nN, links, and each node's agent, babeld and portal."""
    from pathlib import Path

    if radios != 1 and not radio:
        raise click.UsageError("--radios needs --radio")
    started = time.monotonic()
    mesh = MeshLab.up(nodes, topology, seed=seed, lab_id=lab_id,
                      state_dir=Path(state_dir) if state_dir else None, phones=phones,
                      hello_interval=hello, portal=not no_portal, wait=wait, radio=radio,
                      radios=radios, timings=timings,
                      uplinks=_uplinks(uplinks),
                      warn=lambda text: click.echo(f"meshhub: warning: {text}", err=True))
    st = mesh.state
    air = f", over the air ({radios} radio{'s' if radios > 1 else ''} per node)" \
        if radio else ""
    click.echo(f"lab {st.id}: {nodes} nodes, {topology}, {len(st.links)} links{air}, "
               f"ready in {time.monotonic() - started:.1f} s")
    click.echo(f"state: {st.state_dir}   next: meshhub lab status --lab {st.id}")


def _uplinks(text: str) -> dict[str, int]:
    """``n1,n2=2048`` as {"n1": 0, "n2": 2048}."""
    found = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _sep, cost = part.partition("=")
        if cost and not cost.isdigit():
            raise click.BadParameter(f"{part!r}: the cost after '=' must be a whole number",
                                     param_hint="--uplinks")
        found[name] = int(cost or 0)
    return found


@lab.command("status")
@_LAB
@_STATE
def lab_status(lab_id: str | None, state_dir: str | None) -> None:
    """Nodes, their neighbours and how many nodes each can reach (from babeld)."""
    mesh = _open(lab_id, state_dir)
    st = mesh.state
    click.echo(f"lab {st.id} ({st.topology}, hello {st.hello_interval:g} s), "
               f"state {st.state_dir}")
    total = len(st.nodes)
    for node in st.nodes.values():
        health = mesh.agent_health(node.name, timeout=1)
        mesh_part = (health or {}).get("mesh") or {}
        neighbours = [f"{n.get('node') or n.get('address')}(cost {n.get('cost')})"
                      for n in mesh_part.get("neighbours", [])] if isinstance(mesh_part, dict) \
            else []
        routes = mesh.routes(node.name)
        agent = "up" if health else "down"
        click.echo(f"{node.name:>4} {node.mesh_address:<12} agent {agent:<4} "
                   f"reaches {len(routes)}/{total - 1}  neighbours: "
                   f"{', '.join(neighbours) or '-'}")
    click.echo("links: " + ", ".join(f"{a}-{b}" for a, b in st.links))


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("node")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@_LAB
@_STATE
def lab_exec(node: str, argv: tuple[str, ...], lab_id: str | None,
             state_dir: str | None) -> None:
    """Run a command inside NODE (n3) or its phone (p3): meshhub lab exec n3 -- ip route."""
    result = _open(lab_id, state_dir).exec(node, list(argv))
    sys.exit(result.returncode)


@lab.command("cut")
@click.argument("a")
@click.argument("b")
@_LAB
@_STATE
def lab_cut(a: str, b: str, lab_id: str | None, state_dir: str | None) -> None:
    """Bring the link between A and B down."""
    _open(lab_id, state_dir).set_link(a, b, up=False)
    click.echo(f"link {a}-{b} down")


@lab.command("heal")
@click.argument("a")
@click.argument("b")
@_LAB
@_STATE
def lab_heal(a: str, b: str, lab_id: str | None, state_dir: str | None) -> None:
    """Bring the link between A and B up again."""
    _open(lab_id, state_dir).set_link(a, b, up=True)
    click.echo(f"link {a}-{b} up")


@lab.command("move")
@click.argument("phone")
@click.argument("node")
@_LAB
@_STATE
def lab_move(phone: str, node: str, lab_id: str | None, state_dir: str | None) -> None:
    """Carry PHONE (pN) to NODE's access point (same MAC) and take a lease there, as a
    resident walking down the street; accepted on one node, it is let through here too."""
    mesh = _open(lab_id, state_dir)
    mesh.move_phone(phone, node)
    lease = mesh.phone_dhcp(phone)
    click.echo(f"{phone} is on {node}'s access point with {lease['ip']}")


@lab.command("degrade")
@click.argument("a")
@click.argument("b")
@click.option("--loss", type=click.IntRange(0, 100), default=0, show_default=True,
              metavar="PERCENT", help="Share of frames lost in each direction.")
@click.option("--delay", type=click.FloatRange(0, 10000), default=0, show_default=True,
              metavar="MS",
              help="Added delay in each direction (netem; over the air, to that neighbour alone).")
@_LAB
@_STATE
def lab_degrade(a: str, b: str, loss: int, delay: float, lab_id: str | None,
                state_dir: str | None) -> None:
    """Make the link between A and B lossy (and slow); --loss 0 makes it whole again."""
    _open(lab_id, state_dir).degrade(a, b, loss, delay)
    click.echo(f"link {a}-{b}: {loss}% loss" + (f", {delay:g} ms delay" if delay else ""))


@lab.group("uplink")
def lab_uplink() -> None:
    """The uplinks of a lab started with --uplinks."""


@lab_uplink.command("cut")
@click.argument("node")
@click.option("--silent", is_flag=True,
              help="Keep the cable up and drop everything on it (an outage behind the "
                   "router) instead of taking the cable down.")
@_LAB
@_STATE
def lab_uplink_cut(node: str, silent: bool, lab_id: str | None, state_dir: str | None) -> None:
    """Cut NODE's uplink: the mesh should reach the internet through another one."""
    from node.lab.uplinks import set_uplink

    set_uplink(_open(lab_id, state_dir), node, up=False, silent=silent)
    click.echo(f"{node}'s uplink cut" + (" (silently)" if silent else ""))


@lab_uplink.command("restore")
@click.argument("node")
@_LAB
@_STATE
def lab_uplink_restore(node: str, lab_id: str | None, state_dir: str | None) -> None:
    """Give NODE its uplink back."""
    from node.lab.uplinks import set_uplink

    set_uplink(_open(lab_id, state_dir), node, up=True)
    click.echo(f"{node}'s uplink restored")


@lab.group("phone")
def lab_phone() -> None:
    """Residents' phones of a radio lab."""


@lab_phone.command("add")
@click.argument("node")
@_LAB
@_STATE
def lab_phone_add(node: str, lab_id: str | None, state_dir: str | None) -> None:
    """Add a phone next to NODE: its own radio, associated with NODE's access point."""
    phone = _open(lab_id, state_dir).add_phone(node)
    click.echo(f"phone {phone.name} on {node}: {phone.lease.get('ip', '?')}")


@lab.command("kill")
@click.argument("node")
@_LAB
@_STATE
def lab_kill(node: str, lab_id: str | None, state_dir: str | None) -> None:
    """Stop every process of NODE (as if it lost power); its links stay."""
    _open(lab_id, state_dir).kill(node)
    click.echo(f"{node} killed")


@lab.command("revive")
@click.argument("node")
@_LAB
@_STATE
def lab_revive(node: str, lab_id: str | None, state_dir: str | None) -> None:
    """Start a killed NODE's agent and portal again."""
    _open(lab_id, state_dir).revive(node)
    click.echo(f"{node} started")


@lab.command("down")
@_LAB
@_STATE
def lab_down(lab_id: str | None, state_dir: str | None) -> None:
    """Stop everything, delete the namespaces and the lab's state folder."""
    mesh = _open(lab_id, state_dir)
    mesh.down()
    click.echo(f"lab {mesh.state.id} removed")
