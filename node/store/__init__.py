"""The hub's content: a signed, replicated log in SQLite and the views built from it.

Use :class:`Store` (``Store.open(path, identity, trust)``) to read the views
and append or ingest entries; :class:`node.hub.Hub` for validated,
permission-checked actions on top of it. The entry format is specified in
docs/entry-format.md; the database layout in docs/store.md.
"""

from node.store.entries import Entry, entry_id
from node.store.kinds import KINDS
from node.store.models import (
    CATEGORIES,
    MEDIA_TYPES,
    ROLES,
    Account,
    AuditEvent,
    LibraryItem,
    Listing,
    Notice,
    Page,
    SearchHit,
    Submission,
)
from node.store.store import IngestReport, Store

__all__ = [
    "CATEGORIES",
    "KINDS",
    "MEDIA_TYPES",
    "ROLES",
    "Account",
    "AuditEvent",
    "Entry",
    "IngestReport",
    "LibraryItem",
    "Listing",
    "Notice",
    "Page",
    "SearchHit",
    "Store",
    "Submission",
    "entry_id",
]
