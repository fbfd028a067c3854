"""Portal fixtures: an app on a temporary node, its client, and content seeded through Hub.

``app`` keeps CSRF protection ON (as on a node); tests post forms with the
token taken from the page they just fetched (:func:`form_token`).
"""

from __future__ import annotations

import io
import os
import pwd
import re
import struct
import wave
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask, template_rendered
from flask.testing import FlaskClient

from node.config import NodeConfig, load_config
from node.gate.service import GateService
from node.hub import Hub
from node.store.models import LibraryItem, Listing, Notice
from portal import create_app, db
from tests.node.test_gate import FakeShell
from tests.portal.auth_actions import AuthActions

ORGANISER = "alice"
ORGANISER_PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def write_node_toml(directory: Path, extra: str = "") -> NodeConfig:
    """A node.toml in ``directory`` whose data lives next to it; returns it loaded."""
    path = directory / "node.toml"
    path.write_text('[node]\nname = "elm-library"\ndata_dir = "data"\n'
                    'community = "Elm Street Neighbours"\nlocation = "Library roof"\n'
                    + extra, encoding="utf-8")
    return load_config(path)


def make_app(config: NodeConfig, **overrides: Any) -> Flask:
    """A portal for tests: a fast password hasher, CSRF on, everything else as on a node."""
    settings = {"TESTING": True,
                "PASSWORD_HASHER": PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)}
    settings.update(overrides)
    return create_app(settings, config=config)


@pytest.fixture
def node_config(tmp_path: Path) -> NodeConfig:
    """The temporary node's configuration."""
    return write_node_toml(tmp_path)


@pytest.fixture
def app(node_config: NodeConfig) -> Iterator[Flask]:
    """The portal of a temporary node with an empty store."""
    application = make_app(node_config)
    yield application
    db.close(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser without JavaScript, talking to ``app``."""
    return app.test_client()


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """Signing in and out of ``client`` through the organisers' forms."""
    return AuthActions(client)


def page_token(page: str, where: str = "the page") -> str:
    """The CSRF token in the form of ``page`` (HTML)."""
    match = _TOKEN.search(page)
    assert match, f"no CSRF token in the form of {where}"
    return match.group(1)


def form_token(client: FlaskClient, url: str) -> str:
    """The CSRF token of the form on ``url`` (fetched as a browser would)."""
    return page_token(client.get(url).get_data(as_text=True), url)


# --- sample files whose type the library recognises by content --------------
def sample_pdf() -> bytes:
    """A one-page PDF with a line of text."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               None,
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    stream = b"BT /F1 18 Tf 20 100 Td (Water guide) Tj ET"
    objects[3] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def sample_epub() -> bytes:
    """A minimal EPUB container (``mimetype`` stored first, as the format requires)."""
    buffer = io.BytesIO()

    def member(name: str) -> zipfile.ZipInfo:
        # A fixed time: a name alone takes the current time, so two calls a second apart
        # gave different bytes and a test comparing a download with sample_epub() flaked.
        return zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))

    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member("mimetype"), "application/epub+zip",
                         compress_type=zipfile.ZIP_STORED)
        archive.writestr(member("META-INF/container.xml"),
                         '<?xml version="1.0"?><container version="1.0" '
                         'xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                         '<rootfiles><rootfile full-path="book.opf" '
                         'media-type="application/oebps-package+xml"/></rootfiles></container>')
        archive.writestr(member("book.opf"), "<package/>")
    return buffer.getvalue()


def sample_wav(seconds: float = 0.2) -> bytes:
    """A short silent WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(b"\x80" * int(8000 * seconds))
    return buffer.getvalue()


def sample_mp4() -> bytes:
    """The start of an MP4 file (an ``ftyp`` box), enough to be recognised."""
    ftyp = b"ftypisom" + struct.pack(">I", 512) + b"isomiso2mp41"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + b"\x00\x00\x00\x08free" + b"\x00" * 64


def sample_png() -> bytes:
    """A 1×1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff")) + chunk(b"IEND", b""))


SAMPLE_FILES = {"pdf": ("water-guide.pdf", sample_pdf), "epub": ("stories.epub", sample_epub),
                "audio": ("oral-history.wav", sample_wav), "video": ("repair.mp4", sample_mp4),
                "image": ("map.png", sample_png)}


@dataclass
class Seeder:
    """Adds content through :class:`node.hub.Hub`, exactly as organisers do."""

    app: Flask

    @property
    def hub(self) -> Hub:
        """The app's hub (with an organiser account created on first use)."""
        hub = db.services(self.app).hub
        if hub.store.account(ORGANISER) is None:
            hub.create_account(None, name=ORGANISER, password=ORGANISER_PASSWORD, role="admin",
                               display_name="Alice")
        return hub

    def listing(self, **fields: Any) -> Listing:
        """Post a listing (sensible defaults for anything not given)."""
        values = {"category": "for-sale", "title": "Child's bicycle",
                  "body": "A blue **bicycle** for ages 5–8, with stabilisers.",
                  "price": "£15", "contact": "Flat 3, ring twice"}
        values.update(fields)
        return self.hub.post_listing(ORGANISER, **values)

    def notice(self, **fields: Any) -> Notice:
        """Post a notice."""
        values = {"title": "Bin collection moves to Thursday",
                  "body": "Because of the bank holiday, bins are collected on **Thursday**."}
        values.update(fields)
        return self.hub.post_notice(ORGANISER, **values)

    def library(self, media_type: str = "pdf", **fields: Any) -> LibraryItem:
        """Add a library file of ``media_type`` (pdf, epub, audio, video or image)."""
        filename, make = SAMPLE_FILES[media_type]
        values = {"title": f"Sample {media_type}", "author": "Elm Street Library",
                  "language": "en", "description": "A *sample* item.", "collection": "Guides"}
        values.update(fields)
        return self.hub.add_library_file(ORGANISER, io.BytesIO(make()), filename=filename,
                                         **values)

    def neighbourhood(self) -> dict[str, Any]:
        """A realistic little hub: listings in every category, notices, every media type."""
        from node.store.models import CATEGORIES

        listings = [self.listing(category=c, title=f"{c.title()} item {i}",
                                 body=("Well kept, collection from Elm Street. " * 6).strip())
                    for i in range(4) for c in CATEGORIES]
        notices = [self.notice(title="Water off on Elm Street, 9:00–15:00", urgent=True,
                               body="Fill a kettle before 9. **Bottled water** at the library."),
                   self.notice(title="Repair café on Saturday", pinned=True),
                   self.notice()]
        library = {t: self.library(t, title=f"Sample {t}") for t in SAMPLE_FILES}
        return {"listings": listings, "notices": notices, "library": library}


@pytest.fixture
def seed(app: Flask) -> Seeder:
    """Adds content to ``app``'s store through the hub."""
    return Seeder(app)


def every_page_type(content: dict[str, Any]) -> dict[str, str]:
    """One URL of each residents' page type, for a hub seeded with :meth:`Seeder.neighbourhood`."""
    listing = content["listings"][0]
    urgent = content["notices"][0]
    urls = {"home": "/", "listings": "/listings/", "category": f"/listings/{listing.category}",
            "listing": f"/listing/{listing.id}", "notices": "/notices/",
            "notice": f"/notices/{urgent.id}", "library": "/library/",
            "library filtered": "/library/?collection=Guides&type=pdf",
            "search": "/search?q=item", "empty search": "/search?q=zzzzqqq",
            "search form": "/search", "submit": "/submit", "thanks": "/submit/thanks",
            "rules": "/rules", "privacy": "/privacy", "about": "/about", "contact": "/contact",
            "report": f"/listing/{listing.id}/report",
            "not found": "/no/such/page"}
    for media_type, item in content["library"].items():
        urls[f"library {media_type}"] = f"/library/{item.id}"
    return urls


# --- the captive gate: the node's real GateService, only its ip and nft faked ---------------
#: A phone on the access point, and the portal's address on it (``CAPTIVE_NETWORK``).
PHONE = "10.64.7.50"
PORTAL = "http://10.64.7.1"
CAPTIVE_NETWORK = '[mesh]\naddress = "10.42.0.7"\n[clients]\nsubnet = "10.64.7.0/24"\n'


@pytest.fixture
def shell() -> FakeShell:
    """The gate's ip and nft, as the gate's own tests fake them (node/gate runs for real)."""
    return FakeShell()


@pytest.fixture
def gate(tmp_path: Path, shell: FakeShell) -> Iterator[GateService]:
    """The node's real gate service on a socket in ``tmp_path``, the portal its client.

    Its watcher never looks by itself (poll once an hour): a test that changes the
    organisers' switch or sends a broadcast runs the watcher's step by hand
    (``gate.check_mode()``, ``gate.check_broadcast()``), so nothing happens behind its back.
    """
    me = pwd.getpwuid(os.getuid()).pw_name  # the portal's user: this test process
    config = write_node_toml(tmp_path, CAPTIVE_NETWORK
                             + f'[gate]\nsocket = "{tmp_path / "gate.sock"}"\n'
                             f'portal_user = "{me}"\n')
    service = GateService(config, runner=shell, poll_seconds=3600)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def phone(captive_app: Flask) -> FlaskClient:
    """A phone on the access point (its address is in the client subnet) of the module's
    ``captive_app`` (a portal on ``gate``)."""
    client = captive_app.test_client()
    client.environ_base["REMOTE_ADDR"] = PHONE
    return client


@contextmanager
def templates_rendered(app: Flask) -> Iterator[list[str]]:
    """The names of the templates rendered meanwhile."""
    names: list[str] = []

    def record(sender: Flask, template: object, context: object, **extra: object) -> None:
        names.append(str(getattr(template, "name", "")))

    template_rendered.connect(record, app)
    try:
        yield names
    finally:
        template_rendered.disconnect(record, app)
