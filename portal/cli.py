"""The ``meshhub-portal`` command: serve a node's portal, or rehearse with a demo.

``serve`` is what the node's systemd unit runs (as the unprivileged
``meshhub`` user, behind nginx). ``demo`` is ``make run``: a complete node
hub with a sample neighbourhood on this computer, no radio and no root.
``nginx-conf`` prints the nginx site for this node.

Errors a person can meet print as ``meshhub-portal: error: ...`` with a
non-zero exit; set ``MESHHUB_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from node.cli.base import run_cli

if TYPE_CHECKING:
    from node.config import NodeConfig

PROG = "meshhub-portal"
#: Sign-in details of the demo's organisers, kept (mode 0600) in the demo folder.
DEMO_PASSWORDS_FILE = "demo-organisers.txt"
DEMO_NODE_NAME = "demo-node"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", count=True, help="Log more (repeat for debug output).")
@click.version_option(package_name="meshhub", prog_name=PROG)
def cli(verbose: int) -> None:
    """meshhub-portal: the neighbourhood hub that residents and organisers use.

    'demo' rehearses a whole node on this computer (what 'make run' does);
    'serve' runs a node's portal in production, behind nginx.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@click.option("--config", "-c", "config_path", envvar="MESHHUB_CONFIG", metavar="FILE",
              type=click.Path(dir_okay=False),
              help="The node.toml to use (default: $MESHHUB_CONFIG or /etc/meshhub/node.toml).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Listen on this port instead of portal.port.")
@click.option("--allow-root", is_flag=True,
              help="Run even as root (never on a node: the portal needs no privilege).")
def serve(config_path: str | None, port: int | None, allow_root: bool) -> None:
    """Serve the portal with waitress on portal.listen:portal.port (from node.toml).

    On a node, nginx listens on port 80 in front of it (see 'nginx-conf').
    """
    from node.config import find_config, load_config
    from portal.server import serve as run_server

    config = load_config(find_config(config_path))
    run_server(config, allow_root=allow_root, port=port,
               on_ready=lambda url: click.echo(f"{PROG}: serving on {url}", err=True))


@cli.command()
@click.option("--data", "data_dir", default="var/demo", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False), help="Folder for the demo node's files.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port on 127.0.0.1 to serve the demo on (0: any free port).")
@click.option("--agent-port", type=click.IntRange(0, 65535), default=9180, show_default=True,
              help="Port on 127.0.0.1 for the demo's node agent (/metrics, /api/health); "
                   "give each demo running at once its own (0: any free port).")
def demo(data_dir: str, port: int, agent_port: int) -> None:
    """Run a rehearsal node with a sample neighbourhood on http://127.0.0.1:PORT.

    The first start writes DIR/node.toml, creates the node's identity, seeds
    the sample listings, notices, library and two organiser accounts, and
    generates their passwords (kept in DIR/demo-organisers.txt, mode 0600).
    Later starts reuse all of it. Stop with Ctrl-C.
    """
    from portal.process import let_tls_back

    let_tls_back()  # a rehearsal: its sample files are made by fpdf2, which imports TLS classes
    from node.config import load_config
    from portal.server import serve as run_server

    folder = Path(data_dir).resolve()
    listener = demo_agent_socket(agent_port)
    try:
        config_file = write_demo_config(
            folder, port, listener.getsockname()[1] if listener else agent_port or 9180)
        config = load_config(config_file)
        passwords = prepare_demo(config, folder)
        agent = start_demo_agent(config_file, folder, listener)
    finally:
        if listener is not None:
            listener.close()  # the agent holds its own copy

    def ready(url: str) -> None:
        accounts = "\n".join(f"             {name} / {password}  ({role})"
                             for name, password, role in passwords)
        agent_url = f"http://{config.agent.listen}:{config.agent.port}"
        agent_line = (f"  agent      {agent_url}/api/health  {agent_url}/metrics\n"
                      if agent is not None else "")
        click.echo(f"\nmeshhub demo: {config.node.community}\n"
                   f"  open       {url}\n"
                   f"  organisers {url}/organisers/  sign in as:\n{accounts}\n"
                   f"{agent_line}"
                   f"  files      {folder}\n"
                   f"  stop       Ctrl-C\n", err=True)

    try:
        run_server(config, allow_root=True, host="127.0.0.1", port=port, on_ready=ready)
    finally:
        stop_demo_agent(agent)


def demo_agent_socket(port: int) -> socket.socket | None:
    """The agent's listening socket on 127.0.0.1:``port`` (0: a free port), bound here and
    handed to the agent as systemd's socket activation does, so that the port written into
    the demo's node.toml is the one the agent serves on (no port picked, released and
    bound again by another process). None, said on stderr, when the port is taken."""
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        click.echo(f"{PROG}: the agent cannot listen on 127.0.0.1:{port} ({exc.strerror}); "
                   "the hub runs without it (give --agent-port another port, or 0)", err=True)
        return None
    return listener


def start_demo_agent(config_file: Path, folder: Path,
                     listener: socket.socket | None = None) -> subprocess.Popen[bytes] | None:
    """Start ``meshhub agent`` beside the demo portal, as on a real node.

    The agent (health, /metrics, /api/health) is its own process, exactly as
    its systemd unit runs it; its output goes to ``folder/agent.log``. It serves on
    ``listener`` (:func:`demo_agent_socket`; None: no agent).
    """
    if listener is None:
        return None
    command = [sys.executable, "-c", "from node.cli import main; main()",
               "--config", str(config_file), "agent"]

    def in_the_child() -> None:
        _die_with_parent()
        _as_socket_activation(listener)

    with open(folder / "agent.log", "ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, close_fds=False,
                                   preexec_fn=in_the_child)
    try:
        process.wait(timeout=1.5)
    except subprocess.TimeoutExpired:
        return process
    click.echo(f"{PROG}: the agent did not start (see {folder / 'agent.log'}); "
               "the hub runs without it", err=True)
    return None


def _as_socket_activation(listener: socket.socket) -> None:
    """In the agent's child process: ``listener`` at descriptor 3 and ``LISTEN_PID`` /
    ``LISTEN_FDS`` set, as systemd passes a socket (node.agent.systemd_listen_socket).

    Only descriptors marked inheritable reach the agent (Python's are not, PEP 446):
    standard input and output, and descriptor 3.
    """
    import os

    os.dup2(listener.fileno(), 3)
    os.set_inheritable(3, True)  # (dup2 onto itself would leave it as it was)
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")


def _die_with_parent() -> None:
    """In the agent's child process: get SIGTERM when the demo dies, even by SIGKILL.

    A rehearsal must not leave an agent behind (Linux prctl PR_SET_PDEATHSIG;
    elsewhere the agent is stopped by stop_demo_agent on a normal exit only).
    """
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG


def stop_demo_agent(process: subprocess.Popen[bytes] | None) -> None:
    """Stop the demo's agent (SIGTERM, then SIGKILL after 5 s)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@cli.command("nginx-conf")
@click.option("--config", "-c", "config_path", envvar="MESHHUB_CONFIG", metavar="FILE",
              type=click.Path(dir_okay=False), help="The node.toml to use.")
@click.option("--listen", default="80", show_default=True,
              help="What nginx listens on (a port, or address:port).")
@click.option("--cache-dir", default=None, metavar="DIR",
              help="nginx's page cache folder (default /var/cache/nginx/meshhub).")
def nginx_conf(config_path: str | None, listen: str, cache_dir: str | None) -> None:
    """Print the nginx site that fronts this node's portal (images/nginx/meshhub.conf)."""
    from node.config import find_config, load_config
    from node.tls import certificate_paths
    from portal.nginx import DEFAULT_CACHE_DIR, render_site

    config = load_config(find_config(config_path))
    cert, key = certificate_paths(config)
    tls = (cert, key) if cert.exists() and key.exists() else None
    click.echo(render_site(config, library_dir=config.data_dir / "library", listen=listen,
                           cache_dir=cache_dir or DEFAULT_CACHE_DIR, tls=tls), nl=False)


@cli.command("tls-cert")
@click.option("--config", "-c", "config_path", envvar="MESHHUB_CONFIG", metavar="FILE",
              type=click.Path(dir_okay=False), help="The node.toml to use.")
def tls_cert(config_path: str | None) -> None:
    """Make this node's HTTPS certificate if it has none, and print its fingerprint.

    The certificate is self-signed (data_dir/tls/node.crt); organisers compare the
    SHA-256 fingerprint printed here with the one their browser shows, once.
    'nginx-conf' adds HTTPS to the site when the certificate exists.
    """
    from node.config import find_config, load_config
    from node.tls import ensure_certificate

    made = ensure_certificate(load_config(find_config(config_path)))
    click.echo(f"{made.cert}\nSHA-256 fingerprint: {made.fingerprint}")


def write_demo_config(folder: Path, port: int, agent_port: int = 9180) -> Path:
    """``folder/node.toml`` for the demo node, written on first start.

    Later starts keep it, except the agent's port, set to ``agent_port`` each
    time (the agent reads it from the file; the portal's port is passed to it).
    """
    import tomllib

    import tomli_w

    from node.atomic import atomic_write
    from portal.sample.content import COMMUNITY

    path = folder / "node.toml"
    if path.exists():
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        if doc.get("agent", {}).get("port", 9180) == agent_port:
            return path
    else:
        doc = {"node": {"name": DEMO_NODE_NAME, "data_dir": "data", "community": COMMUNITY,
                        "location": "This computer (a rehearsal, no radio)"},
               "portal": {"listen": "127.0.0.1", "port": port or 8080}}
    doc.setdefault("agent", {})["port"] = agent_port
    atomic_write(path, "# The demo node of 'make run' (meshhub-portal demo). Safe to delete.\n"
                 + tomli_w.dumps(doc))
    return path


def prepare_demo(config: NodeConfig, folder: Path) -> list[tuple[str, str, str]]:
    """Identity, sample content and organiser passwords: (name, password, role) each."""
    from node.hub import open_hub
    from portal.sample import seed
    from portal.sample.content import ACCOUNTS

    passwords, fresh = load_or_create_passwords(folder / DEMO_PASSWORDS_FILE,
                                                [a.name for a in ACCOUNTS])
    store, hub = open_hub(config)
    try:
        if fresh:  # the file was lost: give existing accounts the new passwords
            for account in ACCOUNTS:
                if store.account(account.name) is not None:
                    hub.set_password(None, account.name, passwords[account.name])
        seed(hub, passwords)
    finally:
        store.close()
    return [(a.name, passwords[a.name], a.role) for a in ACCOUNTS]


def load_or_create_passwords(path: Path, names: list[str]) -> tuple[dict[str, str], bool]:
    """The demo passwords from ``path`` (lines ``name password``), made if missing.

    Returns the passwords and whether they were generated just now. The
    file is written atomically with mode 0600.
    """
    import secrets

    from node.atomic import atomic_write

    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                known[parts[0]] = parts[1]
    if all(name in known for name in names):
        return known, False
    passwords = {name: secrets.token_urlsafe(12) for name in names}
    text = "# Demo organisers' sign-in (name password), made at first start.\n"
    text += "".join(f"{name} {password}\n" for name, password in passwords.items())
    atomic_write(path, text, mode=0o600)
    return passwords, True


def main(argv: list[str] | None = None) -> None:
    """Run the command, turning known errors into one clear line (also for tests, in-process)."""
    run_cli(cli, PROG, argv)


def program() -> None:
    """The ``meshhub-portal`` program (and ``python -m portal``): a lean process, then :func:`main`.

    OpenSSL is kept out of the process before Flask loads
    (:func:`portal.process.keep_tls_out`): nothing the portal does needs it.
    """
    from portal.process import keep_tls_out

    keep_tls_out()
    main()
