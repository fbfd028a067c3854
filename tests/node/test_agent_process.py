"""The agent's interpreter (node.runtime): -OO, as its unit and the lab start it, kept
from its children. No module the agent can import may need docstrings or asserts."""

from __future__ import annotations

import importlib.util
import json
import py_compile
import subprocess
import sys
from pathlib import Path

from node.identity import Identity
from node.runtime import (
    AGENT_OPTIMIZE_LEVEL,
    NO_DEBUG_RANGES_VARIABLE,
    OPTIMIZE_VARIABLE,
    agent_environment,
    agent_process,
    plain_host,
)
from node.store import Store
from node.trust import StaticTrust
from tests.import_walk import import_walk_script, run_import_walk

ROOT = Path(__file__).resolve().parents[2]

#: Run in a fresh interpreter at the agent's level: set the process up as ``meshhub
#: agent`` does (OpenSSL kept out), import the agent, let the first ``/metrics`` scrape
#: bring prometheus_client in as it does (with TLS), and then, until nothing new appears,
#: everything any loaded node module imports anywhere (inside functions too: what a
#: request, a sync round, a scrape or an update may import later). Never in the agent's
#: process: the lab and the diagnostics run from the command line, and the click group is
#: the command line.
IMPORT_EVERYTHING = import_walk_script(
    setup="from node.runtime import agent_process, import_with_tls\nagent_process()",
    packages=("node", "hardware"),
    skipped=("node.lab", "node.diag", "node.cli.group", "node.cli.diag_cmd",
             "node.cli.lab_cmd"),
    first="attempt('node.agent', 'the agent')\nattempt('node.cli.daemon', 'the agent')\n"
          "TLS_AT_START = sys.modules.get('ssl') is not None\n"
          "import_with_tls('prometheus_client')",
    report='{"failed": failed, "optimize": sys.flags.optimize, "tls_at_start": TLS_AT_START, '
           '"inherited": os.environ.get("PYTHONOPTIMIZE"), "modules": len(done)}')


def test_the_agent_environment_sets_its_level_and_keeps_the_rest() -> None:
    base = {"PATH": "/usr/bin", OPTIMIZE_VARIABLE: "1"}
    assert agent_environment(base) == {"PATH": "/usr/bin", "PYTHONOPTIMIZE": "2",
                                       "PYTHONNODEBUGRANGES": "1"}
    assert base[OPTIMIZE_VARIABLE] == "1", "the caller's mapping is left alone"
    assert AGENT_OPTIMIZE_LEVEL == 2


def test_the_agent_keeps_its_level_from_its_children() -> None:
    environ = {"PATH": "/usr/bin", OPTIMIZE_VARIABLE: "2", NO_DEBUG_RANGES_VARIABLE: "1"}
    agent_process(environ)
    assert environ == {"PATH": "/usr/bin"}


#: In a fresh agent process, code loaded from a bytecode file compiled with every column
#: (as pip compiles a node's venv) keeps its line numbers and drops its column tables; so
#: does the agent's own code, however it was compiled.
CODE_LOCATIONS = """
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
import probe_module
from node.agent import Agent
try:
    probe_module.fails()
except ZeroDivisionError as exc:
    where = traceback.extract_tb(exc.__traceback__)[-1]
codes = (probe_module.fails.__code__, Agent.start.__code__)
print(json.dumps({"columns": sorted({c for code in codes for _, _, c, _ in code.co_positions()
                                     if c is not None}),
                  "agent_lines": len({n for _, n, _, _ in Agent.start.__code__.co_positions()
                                      if n}),
                  "traceback": [where.lineno, where.colno]}))
"""


def test_the_agent_keeps_line_numbers_and_drops_column_tables(tmp_path: Path) -> None:
    module = tmp_path / "probe_module.py"
    module.write_text("def fails():\n    return 1 + (2 // 0)\n")
    py_compile.compile(str(module), optimize=AGENT_OPTIMIZE_LEVEL, doraise=True)
    compiled = Path(importlib.util.cache_from_source(str(module),
                                                     optimization=AGENT_OPTIMIZE_LEVEL))
    assert compiled.exists()
    done = subprocess.run([sys.executable, "-c", CODE_LOCATIONS, str(tmp_path)],
                          env=agent_environment(), capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["columns"] == [], "the agent's code objects carry column tables"
    assert answer["agent_lines"] > 10
    assert answer["traceback"] == [2, None], "a traceback names the line, not the columns"


#: A fresh agent process binds its socket, serves on it with waitress and asks an agent
#: with its client, as a sync round does, without the IDNA codec (encodings.idna and
#: stringprep, for good): every host it resolves is an address.
NO_IDNA = """
import json, sys
from node.runtime import agent_process
agent_process()
from node.agent import _bound_socket
from node.agent_auth import NODE_HEADER
from node.agent_client import AgentClient
from node.agent_server import create_bounded_server
from node.waitress_thread import WaitressThread

def app(environ, start_response):
    start_response("200 OK", [(NODE_HEADER, "ab" * 32), ("Content-Length", "0")])
    return [b""]

server = create_bounded_server(app, sockets=[_bound_socket("127.0.0.1", 0)], threads=1)
thread = WaitressThread(server, "probe")
thread.start()
try:
    key = AgentClient(f"http://127.0.0.1:{thread.port}", timeout=10).target_key()
finally:
    thread.stop()
print(json.dumps({"key": key, "loaded": sorted(m for m in ("encodings.idna", "stringprep")
                                               if m in sys.modules)}))
"""


def test_the_agent_resolves_addresses_without_the_idna_codec() -> None:
    done = subprocess.run([sys.executable, "-c", NO_IDNA], env=agent_environment(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["key"] == "ab" * 32, "the client did not reach the server"
    assert answer["loaded"] == [], "the agent loaded the IDNA codec"


def test_a_host_is_passed_on_as_ascii_bytes_where_it_can_be() -> None:
    assert plain_host("10.42.0.1") == b"10.42.0.1"
    assert plain_host("fe80::1%mesh0") == b"fe80::1%mesh0"
    assert plain_host("bücher.example") == "bücher.example"  # the codec's job, as before


#: A fresh process set up as the agent's, with a sync service served as the agent serves
#: it, takes a post with Markdown pushed to it (on stdin: the wire, its author's key), and
#: reports for 3 s after it is stored: the children it started, the Markdown libraries it
#: loaded, the post's HTML. The agent renders nothing: the portal does (portal/rendering.py).
RECEIVES_A_POST = """
import json, sys, time
from node.runtime import agent_process
agent_process()
from pathlib import Path
import psutil
from node.identity import Identity
from node.sync.client import PeerClient
from tests.node.test_sync_support import idle, make_node
given = json.loads(sys.stdin.readline())
author = type("Author", (), {"public_key": given["key"]})()
b = make_node(Path(given["folder"]), "B", Identity.generate(), [author])
b.service.start()
try:
    PeerClient(b.url, timeout=10).push("0" * 16, None, None, [given["wire"]])
    children = set()
    deadline = time.monotonic() + 30
    while b.store.notice(given["wire"]["id"]) is None:
        assert time.monotonic() < deadline, "the post was not stored"
        time.sleep(0.01)
    seen_at = time.monotonic()
    while time.monotonic() < seen_at + 3 or not idle(b):
        children |= {" ".join(c.cmdline()) for c in psutil.Process().children(recursive=True)}
        time.sleep(0.02)
    shown = b.store.notice(given["wire"]["id"])
    print(json.dumps({"children": sorted(children), "html": shown.body_html,
                      "loaded": sorted(m for m in ("markdown_it", "nh3") if m in sys.modules)}))
finally:
    b.close()
"""


def test_the_agent_stores_a_replicated_post_and_renders_nothing(tmp_path: Path) -> None:
    author = Identity.generate()
    store = Store.open(tmp_path / "a.sqlite3", author, StaticTrust([author.public_key]))
    try:
        wire = store.append("notice.post", {"title": "Water", "body": "**Off** on Tuesday"},
                            actor="ada")
    finally:
        store.close()
    given = {"wire": wire, "key": author.public_key, "folder": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", RECEIVES_A_POST], env=agent_environment(),
                          input=json.dumps(given) + "\n", capture_output=True, text=True,
                          timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["children"] == [], "the agent started a process (a Markdown renderer?)"
    assert answer["loaded"] == [], "the agent loaded the Markdown libraries"
    assert answer["html"] == "<p>**Off** on Tuesday</p>"  # the stand-in, for the portal


#: A fresh agent process's prometheus_client, imported after ``http.client`` was imported
#: while TLS was kept out (by an update hook's ``urlopen``, say), renders metrics (what a
#: scrape does); the module imported first keeps its classes.
SCRAPE_AFTER_CLIENT = """
import sys
from node.runtime import agent_process, import_with_tls
agent_process()
import http.client
client = sys.modules["http.client"]
kept_class = http.client.HTTPException
checks = {"TLS out at first": sys.modules.get("ssl") is None
                              and not hasattr(client, "HTTPSConnection")}
import_with_tls("prometheus_client")
from prometheus_client import CollectorRegistry, Gauge, generate_latest
registry = CollectorRegistry()
Gauge("meshhub_probe", "a gauge", registry=registry).set(1)
checks["rendered"] = b"meshhub_probe 1.0" in generate_latest(registry)
checks["the client's module kept"] = sys.modules["http.client"] is client and http.client is client
checks["its classes kept"] = sys.modules["http.client"].HTTPException is kept_class
print(sorted(name for name, ok in checks.items() if not ok))
"""


def test_a_scrape_brings_prometheus_client_in_after_tls_was_kept_out() -> None:
    done = subprocess.run([sys.executable, "-c", SCRAPE_AFTER_CLIENT], env=agent_environment(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "[]", done.stderr  # asserts are off at the agent's level


def test_everything_the_agent_can_import_works_at_its_level() -> None:
    report = run_import_walk(IMPORT_EVERYTHING, agent_environment(),
                             "these imports fail in the agent's process")
    assert report["optimize"] == AGENT_OPTIMIZE_LEVEL and report["inherited"] is None
    assert not report["tls_at_start"], "importing the agent loaded OpenSSL's TLS"
    assert report["modules"] > 100, "the walk did not reach the agent's modules"


#: A fresh agent process with the autoupdater on (as on a node), started and asked for
#: the sync digest: the modules it holds, and the version its updater reports.
UPDATING_AGENT = """
import json, sys, time
from node.runtime import agent_process
agent_process()
from pathlib import Path
from node.agent import Agent
from node.config import load_config
from node.sync.client import PeerClient
folder = Path(sys.argv[1])
(folder / "node.toml").write_text(
    f'[node]\\nname = "library-roof"\\ndata_dir = "{folder / "data"}"\\n[agent]\\nport = 9180\\n'
    f'[update]\\nenabled = true\\nroot = "{folder / "update"}"\\n')
agent = Agent(load_config(folder / "node.toml"), port=0)
agent.start()
try:
    PeerClient(agent.url, timeout=10).digest()
    time.sleep(1)
    running = agent.update.running_version()
finally:
    agent.stop()
loaded = sorted(name for name in ("importlib.metadata", "email", "http.client", "nacl.signing")
                if name in sys.modules)
from importlib import metadata
print(json.dumps({"loaded": loaded, "running": running, "installed": metadata.version("meshhub")}))
"""


def test_an_agent_with_updates_on_holds_no_email_parser(tmp_path: Path) -> None:
    """Its client speaks through h11, its keys through libsodium's binding, and its updater
    reads the installed version without ``importlib.metadata``: none of these libraries'
    heavier parts stays in a node's agent (docs/scale.md, session 11)."""
    done = subprocess.run([sys.executable, "-c", UPDATING_AGENT, str(tmp_path)],
                          env=agent_environment(), capture_output=True, text=True,
                          timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["loaded"] == []
    assert answer["running"] == answer["installed"]
