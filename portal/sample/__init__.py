"""The sample neighbourhood that ``make run`` (``meshhub-portal demo``) shows.

:func:`seed` posts everything through :class:`node.hub.Hub`, so every
listing, notice, library file and account is a signed entry exactly like an
organiser's, and the library files go through the same type detection and
SHA-256 storage as uploads.

Seeding is idempotent: an item whose title is already there is skipped (so
an interrupted seed finishes on the next start), and once a seed has
completed a marker file in the data directory stops later runs from
bringing back anything an organiser deleted during the rehearsal.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from node.atomic import atomic_write
from portal.sample import content, files

if TYPE_CHECKING:
    from node.hub import Hub
    from node.store.models import LibraryItem, Listing

__all__ = ["MARKER_NAME", "SeedReport", "sample_file", "seed"]

#: File in the data directory that records a completed seed.
MARKER_NAME = "sample-seeded"
_DAY = 24 * 3600


@dataclass(frozen=True)
class SeedReport:
    """How many items one call of :func:`seed` added (all zero on a second run)."""

    accounts: int = 0
    listings: int = 0
    notices: int = 0
    library: int = 0

    @property
    def total(self) -> int:
        """Everything added."""
        return self.accounts + self.listings + self.notices + self.library


def seed(hub: Hub, passwords: Mapping[str, str], *, force: bool = False) -> SeedReport:
    """Fill the hub with the sample neighbourhood; add nothing already there.

    ``passwords`` maps each sample account name (``amira``, ``ben``) to its
    password; the demo generates them at first start. ``force`` ignores the
    completion marker (missing items are added again).
    """
    store = hub.store
    marker = Path(store.path).parent / MARKER_NAME
    if marker.exists() and not force:
        return SeedReport()
    admin = content.ACCOUNTS[0].name
    accounts = 0
    for account in content.ACCOUNTS:
        if store.account(account.name) is None:
            hub.create_account(None, name=account.name, password=passwords[account.name],
                               role=account.role, display_name=account.display_name)
            accounts += 1

    have = {item.title for item in _all_listings(hub)}
    listings = 0
    for listing in content.LISTINGS:
        if listing.title not in have:
            hub.post_listing(admin if listing.pinned else content.ACCOUNTS[1].name,
                             category=listing.category, title=listing.title, body=listing.body,
                             price=listing.price, contact=listing.contact, pinned=listing.pinned)
            listings += 1

    have = {notice.title for notice in store.notices(now=0)}
    notices = 0
    now = int(hub.clock())
    for notice in content.NOTICES:
        if notice.title not in have:
            expires = None if notice.days is None else now + notice.days * _DAY
            hub.post_notice(admin, title=notice.title, body=notice.body, urgent=notice.urgent,
                            pinned=notice.pinned, expires_at=expires)
            notices += 1

    have = {item.title for item in _all_library(hub)}
    library = 0
    for item in content.LIBRARY:
        if item.title not in have:
            hub.add_library_file(admin, io.BytesIO(sample_file(item)), filename=item.filename,
                                 title=item.title, author=item.author, language=item.language,
                                 description=item.description, collection=item.collection)
            library += 1

    atomic_write(marker, f"sample neighbourhood seeded at {int(time.time())}\n")
    return SeedReport(accounts, listings, notices, library)


def sample_file(item: content.SampleItem) -> bytes:
    """The bytes of a sample library item's file, made fresh."""
    if item.maker == "pdf":
        return files.make_pdf(item.title, item.text, author=item.author)
    if item.maker == "epub":
        chapters = [(f"Chapter {n}", (paragraph,)) for n, paragraph in enumerate(item.text, 1)]
        return files.make_epub(item.title, item.author, chapters, language=item.language)
    if item.maker == "wav":
        return files.make_wav(2.0, notes=tuple(float(n) for n in item.text))
    if item.maker == "png":
        return files.make_png(item.text[0] if item.text else item.title)
    raise ValueError(f"sample item {item.title!r}: unknown maker {item.maker!r}")


def _all_listings(hub: Hub) -> list[Listing]:
    """Every listing, expired ones included (``now=0``)."""
    found: list[Listing] = []
    page = 1
    while True:
        batch = hub.store.listings(page=page, per_page=100, now=0)
        found.extend(batch.items)
        if not batch.has_next:
            return found
        page += 1


def _all_library(hub: Hub) -> list[LibraryItem]:
    """Every library item."""
    found: list[LibraryItem] = []
    page = 1
    while True:
        batch = hub.store.library_items(page=page, per_page=100)
        found.extend(batch.items)
        if not batch.has_next:
            return found
        page += 1
