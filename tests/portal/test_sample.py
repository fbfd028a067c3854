"""The sample neighbourhood: enough of everything, real files, seeded once."""

from __future__ import annotations

import io
import wave
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pypdf
import pytest
from argon2 import PasswordHasher

from node.config import NodeConfig
from node.hub import Hub, open_hub
from node.store import CATEGORIES, Store
from portal.sample import MARKER_NAME, seed
from tests.portal.conftest import write_node_toml

PASSWORDS = {"amira": "demo password one", "ben": "demo password two",
             "tomas": "demo password three"}


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[tuple[Store, Hub, NodeConfig]]:
    """A fresh node's store and hub (a quick password hasher)."""
    config = write_node_toml(tmp_path)
    store, hub = open_hub(config, password_hasher=PasswordHasher(time_cost=1, memory_cost=8,
                                                                 parallelism=1))
    yield store, hub, config
    store.close()


def _figures(store: Store) -> dict[str, int]:
    counts = store.counts()
    return {k: counts[k] for k in ("entries", "listings", "notices", "library_items",
                                   "accounts")}


def test_the_neighbourhood_meets_the_minimums(opened: tuple[Store, Hub, NodeConfig]) -> None:
    store, hub, _ = opened
    report = seed(hub, PASSWORDS)
    assert report.listings >= 20 and report.notices == 5 and report.library >= 10
    listings = store.listings(per_page=100).items
    assert len(listings) >= 20
    assert set(Counter(item.category for item in listings)) == set(CATEGORIES)
    notices = store.notices()
    assert len(notices) == 5
    assert sum(n.urgent for n in notices) == 1
    assert notices[0].urgent  # urgent first
    items = store.library_items(per_page=100).items
    assert len(items) >= 10
    assert {"pdf", "epub", "audio", "image"} <= {item.media_type for item in items}
    roles = {account.name: account.role for account in store.accounts()}
    assert roles == {"amira": "admin", "ben": "organiser", "tomas": "technician"}
    assert hub.authenticate("amira", PASSWORDS["amira"]) is not None
    assert all(entry_check == [] for entry_check in [store.verify()])  # every entry signed


def test_seeding_twice_adds_nothing(opened: tuple[Store, Hub, NodeConfig]) -> None:
    store, hub, _ = opened
    seed(hub, PASSWORDS)
    before = _figures(store)
    again = seed(hub, PASSWORDS)
    assert again.total == 0
    assert _figures(store) == before
    forced = seed(hub, PASSWORDS, force=True)  # even without the marker: titles are checked
    assert forced.total == 0
    assert _figures(store) == before


def test_an_interrupted_seed_is_completed_next_time(
        opened: tuple[Store, Hub, NodeConfig]) -> None:
    store, hub, config = opened
    seed(hub, PASSWORDS)
    full = _figures(store)
    (config.data_dir / MARKER_NAME).unlink()
    listing = store.listings(per_page=1).items[0]
    assert listing.title
    report = seed(hub, PASSWORDS)
    assert report.total == 0
    assert _figures(store) == full


def test_deleted_samples_stay_deleted(opened: tuple[Store, Hub, NodeConfig]) -> None:
    store, hub, _ = opened
    seed(hub, PASSWORDS)
    victim = store.listings(per_page=1).items[0]
    hub.delete("listing", "amira", victim.id)
    seed(hub, PASSWORDS)
    assert victim.title not in {item.title for item in store.listings(per_page=100).items}


def _blob(hub: Hub, store: Store, media_type: str) -> bytes:
    item = next(i for i in store.library_items(per_page=100).items
                if i.media_type == media_type)
    return hub.blobs.path(item.sha256).read_bytes()


def test_the_pdf_is_a_real_pdf(opened: tuple[Store, Hub, NodeConfig]) -> None:
    store, hub, _ = opened
    seed(hub, PASSWORDS)
    reader = pypdf.PdfReader(io.BytesIO(_blob(hub, store, "pdf")))
    assert len(reader.pages) >= 1
    assert reader.pages[0].extract_text().strip()


def test_the_epub_is_a_real_epub(opened: tuple[Store, Hub, NodeConfig]) -> None:
    store, hub, _ = opened
    seed(hub, PASSWORDS)
    archive = zipfile.ZipFile(io.BytesIO(_blob(hub, store, "epub")))
    assert archive.namelist()[0] == "mimetype"
    assert archive.read("mimetype") == b"application/epub+zip"
    assert archive.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
    ns = {"c": "urn:oasis:names:tc:opendocument:xmlns:container",
          "opf": "http://www.idpf.org/2007/opf", "dc": "http://purl.org/dc/elements/1.1/"}
    container = ET.fromstring(archive.read("META-INF/container.xml"))  # noqa: S314 - our file
    rootfile = container.find(".//c:rootfile", ns).get("full-path")
    package = ET.fromstring(archive.read(rootfile))  # noqa: S314 - our own file
    assert package.find(".//dc:title", ns).text
    manifest = package.findall(".//opf:manifest/opf:item", ns)
    base = rootfile.rsplit("/", 1)[0]
    for entry in manifest:
        assert f"{base}/{entry.get('href')}" in archive.namelist()
    assert package.findall(".//opf:spine/opf:itemref", ns)


def test_the_audio_plays(opened: tuple[Store, Hub, NodeConfig]) -> None:
    store, hub, _ = opened
    seed(hub, PASSWORDS)
    with wave.open(io.BytesIO(_blob(hub, store, "audio"))) as sound:
        assert sound.getnframes() / sound.getframerate() >= 1.0
