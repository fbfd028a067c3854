"""The portal renders the Markdown of replicated posts (portal/rendering.py): the agent stores
them with a stand-in and renders nothing (node/markdown.py says why)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bench.waiting import wait_for
from node.config import NodeConfig
from node.identity import Identity, load_or_create_identity
from node.store import Store
from node.trust import StaticTrust
from portal import db, pagefiles
from portal.process import portal_environment
from portal.rendering import PendingRenders
from tests.portal.conftest import make_app, write_node_toml

ROOT = Path(__file__).resolve().parents[2]
TEXT = "**Water** is off, see [the map](https://example.org/map)."
RENDERED = "<strong>Water</strong>"
LINK = '<a href="https://example.org/map" rel="nofollow noopener">the map</a>'
STAND_IN = f"<p>{TEXT}</p>"


class OtherNode:
    """Another node's store, whose posts this node takes by replication."""

    def __init__(self, folder: Path) -> None:
        self.identity = Identity.generate()
        self.store = Store.open(folder / "other.sqlite3", self.identity,
                                StaticTrust([self.identity.public_key]))

    def post(self, title: str) -> dict[str, Any]:
        """A notice posted there (rendered there as it is stored), as its wire form."""
        return self.store.append("notice.post", {"title": title, "body": TEXT}, actor="ada")


def arrive(store: Store, *wires: dict[str, Any]) -> None:
    """Store ``wires`` as the agent's sync service does: a stand-in, the subject listed."""
    report = store.ingest(wires, render_later=True)
    assert len(report.accepted) == len(wires), report


@pytest.fixture
def other(tmp_path: Path) -> Iterator[OtherNode]:
    node = OtherNode(tmp_path)
    yield node
    node.store.close()


def trusting(folder: Path, other: OtherNode, extra: str = "") -> NodeConfig:
    """This node's configuration, trusting ``other``'s key."""
    return write_node_toml(folder, f'[trust]\nnode_keys = ["{other.identity.public_key}"]\n'
                           + extra)


@pytest.fixture
def app(tmp_path: Path, other: OtherNode) -> Iterator[Flask]:
    application = make_app(trusting(tmp_path, other))
    yield application
    db.close(application)


def read_only(store: Store) -> sqlite3.Connection:
    return sqlite3.connect(f"{store.path.resolve().as_uri()}?mode=ro", uri=True)


def test_a_replicated_post_is_shown_rendered_after_the_portal_looked(
        app: Flask, other: OtherNode) -> None:
    store = db.services(app).store
    wire = other.post("Water off")
    arrive(store, wire)
    client = app.test_client()
    page = client.get(f"/notices/{wire['id']}").get_data(as_text=True)
    assert STAND_IN in page and RENDERED not in page  # escaped, shown as it was written
    pending, conn = PendingRenders(lambda: store), read_only(store)
    try:
        assert pending.check(conn) == 1
        page = client.get(f"/notices/{wire['id']}").get_data(as_text=True)
        assert RENDERED in page and LINK in page
        assert pending.check(conn) == 0  # its own commit: nothing left
        arrive(store, other.post("Second"), other.post("Third"))
        assert pending.check(conn) == 2
    finally:
        conn.close()


def test_page_files_are_written_with_the_rendered_markdown(
        app: Flask, other: OtherNode, tmp_path: Path) -> None:
    store = db.services(app).store
    config = app.config["NODE_CONFIG"]
    renderer = pagefiles.Renderer(app, config, root=tmp_path / "pages",
                                  pending=PendingRenders(lambda: store))
    try:
        renderer.resume()
        while renderer.queue:
            renderer.step(budget=5)
        wire = other.post("Water off")
        arrive(store, wire)
        renderer.step(budget=5)  # the look after the agent's commit, then the pages
        while renderer.queue:
            renderer.step(budget=5)
        for path in (f"/notices/{wire['id']}", "/notices/"):
            name = pagefiles.file_name(renderer.languages[0], path)
            page = (renderer.root / name).read_text(encoding="utf-8")
            assert TEXT.split(",")[0] not in page, path  # never the stand-in
        item = (renderer.root / pagefiles.file_name(renderer.languages[0],
                                                    f"/notices/{wire['id']}")).read_text()
        assert RENDERED in item and LINK in item
    finally:
        renderer.stop()


def test_the_served_portal_renders_what_arrived_while_it_was_down_and_after(
        tmp_path: Path, other: OtherNode) -> None:
    """As a node runs it (no page files: no nginx in front): its own thread looks."""
    config = trusting(tmp_path, other)
    assert not pagefiles.enabled(config)
    left = other.post("Left while the portal was down")
    agent_stores(config, other, left)
    with served(config) as url:
        wait_for("the post left unrendered, rendered at start", lambda: RENDERED in
                 fetch(f"{url}/notices/{left['id']}"), timeout=60)
        later = other.post("Arrived while it runs")
        agent_stores(config, other, later)
        wait_for("the post that arrived, rendered", lambda: RENDERED in
                 fetch(f"{url}/notices/{later['id']}"), timeout=60)


def agent_stores(config: NodeConfig, other: OtherNode, wire: dict[str, Any]) -> None:
    """``wire`` stored in the node's database by another process, as its agent does."""
    store = Store.open(config.data_dir / "hub.sqlite3", load_or_create_identity(config.data_dir),
                       StaticTrust([other.identity.public_key]), render=False)
    try:
        arrive(store, wire)
    finally:
        store.close()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
        return str(response.read().decode("utf-8"))


class served:  # noqa: N801 - used as a context manager, like a function
    """``portal serve`` of ``config`` as a node runs it; the URL it serves on."""

    def __init__(self, config: NodeConfig) -> None:
        command = [sys.executable, "-m", "portal", "serve", "--config", str(config.path),
                   "--port", "0"]
        if os.geteuid() == 0:
            command.append("--allow-root")
        self.process = subprocess.Popen(command, cwd=ROOT, env=portal_environment(),
                                        stderr=subprocess.PIPE, text=True,
                                        stdout=subprocess.DEVNULL)

    def __enter__(self) -> str:
        assert self.process.stderr is not None
        said: list[str] = []
        while not said or ("serving on http://" not in said[-1] and said[-1]):
            said.append(self.process.stderr.readline())
        assert "serving on http://" in said[-1], "".join(said)
        return said[-1].split("serving on ", 1)[1].strip()

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
