"""The autoupdater end to end on loopback: three real agents, releases signed with provisioning.

Each agent serves /update/v1 and finds its "neighbours" through a static peer
source (as the mesh's discovery feeds them on a node). Installing uses a fake
installer (a venv-like folder), restart and probe, so no pip runs here; the
state machine, the mirror protocol, verification and the rollout are the
real ones.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from bench.update_lab import ADMINS, registry_files, seed_root, signed_release
from bench.waiting import wait_for
from node.agent import Agent
from node.config import load_config
from node.identity import Identity, save_identity
from node.update.manifest import MANIFEST_NAME, Manifest, parse_manifest
from tests.node.test_agent import listening_socket
from tests.node.test_health_collector import fake_sources

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


# --- nodes ---------------------------------------------------------------------------------

def http(url: str, *, headers: dict[str, str] | None = None, data: bytes | None = None,
         method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request to a loopback agent; errors are statuses too."""
    request = urllib.request.Request(url, data=data, headers=headers or {},  # noqa: S310
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - http://
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@dataclass
class Node:
    """One agent on loopback with its update root and what its fakes saw."""

    name: str
    agent: Agent
    root: Path
    installed: list[str] = field(default_factory=list)
    healthy: Callable[[str], bool] = lambda version: True

    def status(self) -> dict[str, object]:
        return json.loads(http(self.agent.url + "/update/v1/status")[2])  # type: ignore[no-any-return]

    def check(self) -> str:
        return str(self.agent.update.check("test"))


def start_nodes(tmp_path: Path, count: int = 3) -> list[Node]:
    """``count`` agents in a line (n1 - n2 - n3) with registry, update root and fakes."""
    sockets = [listening_socket() for _ in range(count)]  # held: each agent is handed its own
    ports = [sock.getsockname()[1] for sock in sockets]
    names = [f"n{i + 1}" for i in range(count)]
    keys = {}
    for name in names:
        identity = Identity.generate()
        save_identity(identity, tmp_path / name / "data" / "identity.key")
        keys[name] = identity.public_key
    anchors, snapshot = registry_files(keys)
    nodes: list[Node] = []
    try:
        for index, name in enumerate(names):
            base = tmp_path / name
            (base / "data" / "registry").mkdir(parents=True, exist_ok=True)
            (base / "data" / "registry" / "anchors.json").write_bytes(anchors)
            (base / "data" / "registry" / "snapshot.json").write_bytes(snapshot)
            seed_root(base / "opt", "1.0.0")
            peers = [f"http://127.0.0.1:{ports[j]}" for j in (index - 1, index + 1)
                     if 0 <= j < count]
            (base / "node.toml").write_text(
                f'[node]\nname = "{name}"\ndata_dir = "{base / "data"}"\n'
                f"[agent]\nport = {ports[index]}\n[health]\ninterval_seconds = 5\n"
                f"[sync]\npeers = {json.dumps(peers)}\ninterval_seconds = 1\n"
                f'[update]\nenabled = true\nroot = "{base / "opt"}"\n'
                "health_window_seconds = 30\njitter_minutes = 0\n")
            agent = Agent(load_config(base / "node.toml"), sources=fake_sources(clock=time.time),
                          interval_seconds=0.2, listen_socket=sockets[index])
            node = Node(name, agent, base / "opt")
            _fake_machine(node)
            agent.update.add_peer_source(lambda peers=peers: peers)
            agent.start()
            nodes.append(node)
    except BaseException:
        stop_nodes(nodes)
        for sock in sockets[len(nodes):]:
            sock.close()
        raise
    return nodes


def _fake_machine(node: Node) -> None:
    updater = node.agent.update.updater

    def install(venv: Path, wheels: Path, version: str) -> None:
        assert (wheels / f"meshhub-{version}-py3-none-any.whl").is_file()
        (venv / "bin").mkdir(parents=True)
        node.installed.append(version)

    def probe() -> tuple[bool, str]:
        version = updater.current_version() or ""
        ok = node.healthy(version)
        return ok, f"{version} {'answers' if ok else 'does not answer'}"

    updater.installer = install
    updater.restart = lambda: None
    updater.probe = probe
    updater.health_window = 0.3
    updater.probe_interval = 0.05


def stop_nodes(nodes: list[Node]) -> None:
    for node in nodes:
        node.agent.stop()


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[list[Node]]:
    nodes = start_nodes(tmp_path)
    try:
        yield nodes
    finally:
        stop_nodes(nodes)


def held_files(node: Node, version: str) -> list[str]:
    folder = node.root / "releases" / version
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --- tests ----------------------------------------------------------------------------------

def test_a_release_imported_on_one_node_reaches_and_installs_everywhere(
        mesh: list[Node], tmp_path: Path) -> None:
    manifest = signed_release(tmp_path / "rel", "1.1.0")
    n1, n2, n3 = mesh
    n1.agent.update.import_release(tmp_path / "rel")
    n1.agent.update.request_check("test")  # n1 installs, and tells n2, which tells n3
    # Running 1.1.0 starts at the switch; "done" comes after the health check that follows.
    wait_for("every node on 1.1.0, checked", lambda: all(
        n.agent.update.running_version() == "1.1.0" and n.status()["state"]["step"] == "done"
        for n in mesh))
    for node in mesh:
        assert node.installed == ["1.1.0"]
        assert os.readlink(node.root / "current") == "venvs/1.1.0"
        assert held_files(node, "1.1.0") == sorted([MANIFEST_NAME, *[f.path for f in
                                                                     manifest.files]])
        status = node.status()
        assert status["running"] == "1.1.0" and status["state"]["step"] == "done"
        assert status["held"] == "1.1.0"
    size = sum(f.size for f in manifest.files)
    assert n1.agent.update.files.received == 0
    # Each file crossed each link once: n2 took it from n1, n3 from n2 (never from further).
    assert n2.agent.update.files.received == size
    assert n3.agent.update.files.received == size
    # The health document (sampled every 0.2 s here) carries the update state too.
    wait_for("n3's health document to show 1.1.0", lambda: json.loads(
        http(n3.agent.url + "/api/health")[2])["update"] == {**n3.agent.update.health()},
        timeout=5)
    health = json.loads(http(n3.agent.url + "/api/health")[2])
    assert health["update"]["running"] == "1.1.0" and health["update"]["step"] == "done"


def test_files_are_served_only_from_a_held_verified_release_with_ranges(
        mesh: list[Node], tmp_path: Path) -> None:
    manifest = signed_release(tmp_path / "rel", "1.1.0")
    n1 = mesh[0]
    url = n1.agent.url + "/update/v1"
    assert http(url + "/manifest")[0] == 404
    n1.agent.update.import_release(tmp_path / "rel")
    n1.agent.update.reload_held()
    status, _, served = http(url + "/manifest")
    assert status == 200 and parse_manifest(served).release == manifest.release
    item = manifest.files[0]
    status, headers, body = http(f"{url}/files/{item.sha256}", headers={"Range": "bytes=3-"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 3-{item.size - 1}/{item.size}"
    assert body == (tmp_path / "rel" / item.path).read_bytes()[3:]
    assert http(f"{url}/files/{item.sha256}", headers={"Range": "bytes=9999999-"})[0] == 416
    for bad in ("/files/" + "0" * 64, "/files/../manifest.json", "/releases/1.1.0/x",
                "/files/" + item.sha256.upper(), "/" + "x" * 300):
        assert http(url + bad)[0] == 404, bad
    assert http(url + "/manifest", data=b"x", method="POST")[0] == 405
    assert http(url + "/notify", data=b"x" * 100, method="POST")[0] == 413


def _serve_as_mirror(node: Node, folder: Path) -> None:
    """Put a release folder where ``node`` mirrors releases from (no checks: a bad mirror)."""
    import shutil

    target = node.root / "releases" / folder.name
    shutil.copytree(folder, target)
    manifest = parse_manifest((folder / MANIFEST_NAME).read_bytes())
    from node.update.service import Held

    node.agent.update._held = Held(manifest, (folder / MANIFEST_NAME).read_bytes(), target)


@pytest.mark.parametrize("case", ["too few signatures", "unknown key", "older", "tampered file",
                                  "duplicate file", "path outside", "not json", "huge"])
def test_refused_releases_leave_the_running_version(mesh: list[Node], tmp_path: Path,
                                                    case: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    n1, n2, _ = mesh
    version = "0.9.0" if case == "older" else "1.1.0"
    signers = {"too few signatures": ADMINS[:1],
               "unknown key": [ADMINS[0], Identity.generate()]}.get(case)
    folder = tmp_path / "evil" / version
    folder.parent.mkdir()
    signed_release(folder, version, signers=signers)
    manifest_path = folder / MANIFEST_NAME
    doc = json.loads(manifest_path.read_text())
    if case == "tampered file":
        wheel = folder / doc["release"]["files"][0]["path"]
        wheel.write_bytes(bytes(b ^ 1 for b in wheel.read_bytes()))  # same size, other bytes
    elif case == "duplicate file":
        doc["release"]["files"].append(dict(doc["release"]["files"][0]))
    elif case == "path outside":
        doc["release"]["files"][0]["path"] = "../../etc/passwd"
    if case in ("duplicate file", "path outside"):
        manifest_path.write_text(json.dumps(doc))
    elif case == "not json":
        manifest_path.write_bytes(b"{not json")
    elif case == "huge":
        manifest_path.write_bytes(b"{" + b" " * 300_000 + b"}")
    # n1 serves it regardless (a broken or hostile mirror); n2 must refuse it.
    if case in ("duplicate file", "path outside", "not json", "huge"):
        from node.update.service import Held

        fake = Manifest(doc["release"] if case != "not json" else {}, ())
        n1.agent.update._held = Held(fake, manifest_path.read_bytes(), folder)
    else:
        _serve_as_mirror(n1, folder)
    n1.agent.update.reload_held = lambda: n1.agent.update._held  # keep serving it as it is
    with caplog.at_level("WARNING", logger="meshhub.update"):
        outcome = n2.check()
    assert n2.agent.update.running_version() == "1.0.0"
    assert n2.installed == []
    assert os.readlink(n2.root / "current") == "venvs/1.0.0"
    assert not (n2.root / "releases" / version).exists()
    expected = {"too few signatures": "only 1 valid signature",
                "unknown key": "not (or no longer) admins", "older": None,
                "tampered file": "tampered", "duplicate file": "listed twice",
                "path outside": "not a plain file name", "not json": "not a JSON file",
                "huge": "more than the 262144"}[case]
    if expected is None:
        assert outcome == "up to date"  # an older release is simply not wanted
        return
    refusals = n2.status()["refusals"]
    assert any(expected in reason for reason in refusals.values()), refusals
    assert expected in caplog.text, "the refusal is logged with its reason"


def test_a_release_failing_its_health_check_is_rolled_back_everywhere(
        mesh: list[Node], tmp_path: Path) -> None:
    for node in mesh:
        node.healthy = lambda version: version != "1.1.0"
    signed_release(tmp_path / "rel", "1.1.0")
    mesh[0].agent.update.import_release(tmp_path / "rel")
    mesh[0].agent.update.request_check("test")
    wait_for("every node to roll 1.1.0 back", lambda: all(
        n.agent.update.updater.state().step == "rolled-back" for n in mesh))
    for node in mesh:
        assert node.installed == ["1.1.0"], "tried once"
        assert os.readlink(node.root / "current") == "venvs/1.0.0"
        state = node.status()["state"]
        assert state["refused"] == ["1.1.0"] and "does not answer" in state["message"]
        assert node.check() == "up to date", "never tried again"
        assert node.installed == ["1.1.0"]


def test_pause_for_the_mesh_is_replicated_and_honoured(mesh: list[Node],
                                                       tmp_path: Path) -> None:
    from node.hub import open_hub
    from node.update.pause import set_pause

    n1, n2, n3 = mesh
    store, hub = open_hub(n1.agent.cfg, password_hasher=FAST_HASHER)
    try:
        hub.create_account(None, name="ada", password="ada-password-123", role="admin")
        hub.create_account(None, name="olga", password="olga-password-1", role="organiser")
        from node.errors import PermissionDenied

        with pytest.raises(PermissionDenied):
            set_pause(store, True, "olga")
        set_pause(store, True, "ada", "street festival this weekend")
    finally:
        store.close()
    n1.agent.sync.schedule_pull(None)
    wait_for("the pause on n3", lambda: n3.status()["paused"]["paused"], timeout=30)
    signed_release(tmp_path / "rel", "1.1.0")
    n1.agent.update.import_release(tmp_path / "rel")
    for node in mesh:
        assert node.check() == "paused"
        assert node.agent.update.last_result.startswith("paused: by ada")
        assert node.installed == []
    store, _ = open_hub(n2.agent.cfg, password_hasher=FAST_HASHER)
    try:
        wait_for("ada's account on n2", lambda: store.account("ada") is not None, timeout=30)
        set_pause(store, False, "ada")
    finally:
        store.close()
    wait_for("the resume on n1", lambda: not n1.status()["paused"]["paused"], timeout=30)
    assert n1.check() == "installed"


def test_staged_rollout_holds_and_mirrors_but_waits_its_turn(mesh: list[Node],
                                                             tmp_path: Path) -> None:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    signed_release(tmp_path / "rel", "1.1.0", rollout_days=365, date=today)
    n1 = mesh[0]
    n1.agent.update.import_release(tmp_path / "rel")
    assert n1.check() == "waiting"
    assert "turn has not come" in n1.agent.update.last_result
    assert n1.installed == [] and n1.status()["held"] == "1.1.0"


def test_cli_update_status_and_check(mesh: list[Node], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from node.cli import cli

    config = str(tmp_path / "n1" / "node.toml")
    signed_release(tmp_path / "rel", "1.1.0")
    runner = CliRunner()
    result = runner.invoke(cli, ["-c", config, "update", "import", str(tmp_path / "rel"),
                                 "--no-check"])
    assert result.exit_code == 0, result.output
    assert "holding release 1.1.0" in result.output
    result = runner.invoke(cli, ["-c", config, "update", "check", "--timeout", "60"])
    assert result.exit_code == 0, result.output
    assert "running 1.1.0" in result.output and "installed" in result.output
    result = runner.invoke(cli, ["-c", config, "update", "status", "--json"])
    assert json.loads(result.output)["state"]["step"] == "done"


def test_admin_page_pauses_and_resumes(tmp_path: Path) -> None:
    from tests.portal.auth_actions import AuthActions, close_app, make_app

    app = make_app(tmp_path)
    try:
        client = app.test_client()
        auth = AuthActions(client)
        auth.login("olga")
        assert client.get("/organisers/updates").status_code == 403
        auth.logout()
        auth.login("ada")
        page = client.get("/organisers/updates").get_data(as_text=True)
        assert "Updates are not paused." in page and "Pause updates on every node" in page
        response = auth.post("/organisers/updates", {"reason": "festival"},
                             form_page="/organisers/updates")
        assert response.status_code == 303
        page = client.get("/organisers/updates").get_data(as_text=True)
        assert "Updates are paused for the whole mesh." in page and "festival" in page
        assert "Resume updates on every node" in page
        auth.post("/organisers/updates", {"reason": ""}, form_page="/organisers/updates")
        assert "Updates are not paused." in client.get("/organisers/updates").get_data(
            as_text=True)
    finally:
        close_app(app)


def test_a_resume_from_a_node_whose_clock_is_behind_still_wins(tmp_path: Path) -> None:
    """Pis have no real-time clock: the latest switch must win even if its clock lags."""
    from node.identity import Identity
    from node.update.pause import pause_state, set_pause
    from tests.node.test_store_support import FakeClock, make_hub, open_store

    ahead, behind = FakeClock(), FakeClock()
    behind.now -= 3600  # node B's clock is an hour behind node A's
    a_id, b_id = Identity.generate(), Identity.generate()
    with open_store(tmp_path / "a.sqlite3", a_id, b_id, clock=ahead) as a, \
            open_store(tmp_path / "b.sqlite3", b_id, a_id, clock=behind) as b:
        make_hub(a, ahead)
        set_pause(a, True, "ada", "before the street party")
        report = b.ingest(a.entries_since({}))
        assert not report.rejected
        set_pause(b, False, "ada")
        a.ingest(b.entries_since(a.vector()))
        assert pause_state(a.path).paused is False
        assert pause_state(b.path).paused is False


@pytest.mark.parametrize(("remote", "caller", "status"), [
    ("10.42.0.1", None, "202 Accepted"),  # this node's mesh address: the guard found it local
    ("127.0.0.1", None, "202 Accepted"),
    ("10.42.0.9", "a-neighbours-key", "403 Forbidden"),  # a neighbour, signed
    ("127.0.0.1", "a-neighbours-key", "403 Forbidden"),
])
def test_checks_are_asked_for_from_the_node_itself_on_any_of_its_addresses(
        remote: str, caller: str | None, status: str) -> None:
    """A node's agent listens on its mesh address, where `meshhub update check` asks."""
    import io

    from node.agent_auth import CALLER_KEY
    from node.update.http import create_update_app

    asked: list[str] = []

    class Source:
        def request_check(self, reason: str) -> None:
            asked.append(reason)

    answered: list[str] = []
    environ = {"PATH_INFO": "/update/v1/check", "REQUEST_METHOD": "POST",
               "REMOTE_ADDR": remote, "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO(b""),
               CALLER_KEY: caller}
    create_update_app(Source())(environ, lambda s, _h: answered.append(s))  # type: ignore[arg-type]
    assert answered == [status]
    assert bool(asked) == (status == "202 Accepted")
