"""Issue 17 items 1 and 2 replayed in the lab: a rogue box on the mesh, real agents, real babeld.

A line n1-n2-n3-n4 where n4 is a box nobody registered (it runs meshhub
with its own key, and trusts the others). The rogue gets a genuine notice
posted on n1 while n1 is cut off and offers it to n3 with its body erased.
Before, n3 took it (and passed it to n2) and the notice stayed hidden; then,
with bodies restored from any peer, it came back after the heal. Now n3
takes nothing from n4 at all: an answer counts only when the registered
node asked signed it, and n4 is none. After the heal every registered node
shows the notice. Meanwhile n4 gets nothing from any agent: unsigned, or
signed with its unregistered key.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.meshlab import meshhub, organiser, portal_page
from node.lab import MeshLab
from tests.lab.test_mesh import _python, make_lab, sync_status, wait_for

pytestmark = pytest.mark.root
REGISTERED = ("n1", "n2", "n3")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshLab]:
    yield from make_lab(tmp_path_factory.mktemp("attacks"), 4, "line", untrusted=("n4",))


def database(mesh: MeshLab, node: str) -> Path:
    return Path(mesh.state.state_dir) / node / "data" / "hub.sqlite3"


def held(mesh: MeshLab, node: str, entry_id: str) -> tuple[str, str, str, str | None] | None:
    """(id, header, sig, body) of an entry in ``node``'s store, read from the host."""
    with sqlite3.connect(f"file:{database(mesh, node)}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT id, header, sig, body FROM entries WHERE id = ?",
                           (entry_id,)).fetchone()
    return None if row is None else tuple(row)  # type: ignore[return-value]


def test_a_rogue_serving_a_notice_erased_first_cannot_hide_it(lab: MeshLab) -> None:
    author = organiser(lab, "n1")
    wait_for("the organiser's account on n3",
             lambda: "argon2" in _rows(lab, "n3", "account.create"))
    lab.set_link("n1", "n2", up=False)
    try:
        title = "Boil water before drinking"
        item = meshhub(lab, "n1", "post", "notice", "--as", author, "--title", title,
                       "--body", "Until Friday.")
        # The rogue copied n1's log (say, from the air) and holds the notice erased;
        # n3 pulls from it as from any neighbour.
        copied = [json.loads(w) for w in _log(lab, "n1", item)]
        for wire in copied:
            if wire["id"] == item:
                wire["body"] = None
        _python(lab, "n4", "import json\nfrom node.config import load_config\n"
                "from node.hub import open_hub\n"
                f"store, hub = open_hub(load_config({lab.node('n4').config!r}))\n"
                f"report = store.ingest(json.loads({json.dumps(copied)!r}))\n"
                "assert not report.rejected, report\nstore.close()\n")
        # n3 asks n4 as any neighbour, and refuses it: not a registered node.
        rogue = f"http://{lab.node('n4').mesh_address}:9180"
        lab_sync_now(lab, "n3")
        wait_for("n3 to refuse n4 as unregistered",
                 lambda: any(p["url"] == rogue and "not registered" in (p["last_error"] or "")
                             for p in sync_status(lab, "n3").get("peers", [])))
        assert held(lab, "n3", item) is None and held(lab, "n2", item) is None
    finally:
        lab.set_link("n1", "n2", up=True)
    for node in REGISTERED:
        wait_for(f"the notice on {node}", lambda node=node: title in portal_page(lab, node),
                 timeout=60)
        assert (held(lab, node, item) or ("",) * 4)[3] is not None


def test_the_rogue_gets_nothing_from_any_agent(lab: MeshLab) -> None:
    organiser(lab, "n1")
    for node in REGISTERED:
        address = lab.node(node).mesh_address
        for method, path, data in (("POST", "/sync/v1/entries", '{"since":{},"limit":500}'),
                                   ("GET", "/sync/v1/digest", ""),
                                   ("GET", "/sync/v1/status", ""),
                                   ("GET", "/update/v1/manifest", "")):
            argv = ["curl", "-s", "-m", "5", "-X", method, "-w", "\n%{http_code}",
                    f"http://{address}:9180{path}"]
            if data:
                argv += ["-H", "Content-Type: application/json", "-d", data]
            out = lab.exec("n4", argv, capture_output=True, timeout=15).stdout
            assert out.endswith("\n401"), (node, path, out[-300:])
            assert "argon2" not in out
        # Signed with the rogue's own key: not registered, so nothing either.
        code = _signed_request_code(lab, "n4", address)
        assert "401" in code and "not registered" in code, code


def test_registered_nodes_still_sync(lab: MeshLab) -> None:
    author = organiser(lab, "n3")
    title = "Registered nodes still talk"
    meshhub(lab, "n3", "post", "notice", "--as", author, "--title", title, "--body", "Yes.")
    wait_for("the notice on n1", lambda: title in portal_page(lab, "n1"))


def _log(mesh: MeshLab, node: str, entry_id: str) -> list[str]:
    """The wire forms (JSON) of every entry by the author of ``entry_id``, from the host."""
    with sqlite3.connect(f"file:{database(mesh, node)}?mode=ro", uri=True) as conn:
        (key,) = conn.execute("SELECT author FROM entries WHERE id = ?",
                              (entry_id,)).fetchone()
        return [json.dumps({"id": r[0], "header": json.loads(r[1]), "sig": r[2],
                            "body": None if r[3] is None else json.loads(r[3])})
                for r in conn.execute("SELECT id, header, sig, body FROM entries "
                                      "WHERE author = ? ORDER BY seq", (key,))]


def _rows(mesh: MeshLab, node: str, kind: str) -> str:
    with sqlite3.connect(f"file:{database(mesh, node)}?mode=ro", uri=True) as conn:
        return " ".join(r[0] or "" for r in conn.execute(
            "SELECT body FROM entries WHERE kind = ?", (kind,)))


def _signed_request_code(mesh: MeshLab, node: str, address: str) -> str:
    root = str(Path(__file__).resolve().parents[2])
    code = (f"import sys; sys.path.insert(0, {root!r})\n"
            "import http.client\nfrom node.agent_auth import HEADER, NODE_HEADER, sign_request\n"
            "from node.config import load_config\n"
            "from node.identity import load_or_create_identity\n"
            f"ident = load_or_create_identity(load_config({mesh.node(node).config!r}).data_dir)\n"
            "body = b'{\"since\":{},\"limit\":500}'\n"
            f"conn = http.client.HTTPConnection({address!r}, 9180, timeout=5)\n"
            "conn.request('GET', '/sync/v1/'); r = conn.getresponse(); r.read()\n"
            "to = r.getheader(NODE_HEADER)\n"  # the node names itself; sign for it
            f"conn = http.client.HTTPConnection({address!r}, 9180, timeout=5)\n"
            "conn.request('POST', '/sync/v1/entries', body=body, headers={HEADER: "
            "sign_request(ident, 'POST', '/sync/v1/entries', body, to=to)})\n"
            "r = conn.getresponse(); print(r.status, r.read().decode())\n")
    result = mesh.exec(node, [sys.executable, "-c", code], capture_output=True, timeout=30)
    return result.stdout + result.stderr


def lab_sync_now(mesh: MeshLab, node: str) -> None:
    """Ask ``node``'s agent for a round with every neighbour now (as a notify would)."""
    mesh.exec(node, ["curl", "-s", "-m", "5", "-H", "Content-Type: application/json", "-d",
                     '{"digest":"0000000000000000"}', "http://127.0.0.1:9180/sync/v1/notify"],
              capture_output=True, timeout=15)
