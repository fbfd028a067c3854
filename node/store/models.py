"""What the portal reads: the views built from the signed log, as plain records.

These dataclasses are the contract between ``node.store`` (which builds them
from entries) and ``portal``/CLI (which show them). Times are Unix seconds
(UTC, integers); ``None`` means "not set".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Generic, Literal, TypeVar

from node.frozen import frozen

#: Listing categories, in the order residents see them.
CATEGORIES: tuple[str, ...] = ("for-sale", "free", "wanted", "services", "jobs", "events")
#: Account roles, least to most powerful; each role may do all that the ones before it may.
#: A technician sees the mesh's health (the technicians' pages) and changes nothing;
#: organisers post and upload, moderators also decide submissions, admins also manage
#: accounts.  Organisers and above also see the technicians' pages (read-only).
ROLES: tuple[str, ...] = ("technician", "organiser", "moderator", "admin")
#: Kinds of library item, decided from the file's content.
MEDIA_TYPES: tuple[str, ...] = ("pdf", "epub", "audio", "video", "zim", "image", "other")

T_co = TypeVar("T_co", covariant=True)  #: a Page of listings is a Page of objects


@frozen
class Listing:
    """A listing (for sale, free, wanted, services, jobs, events)."""

    id: str  #: id of the entry that created it
    category: str
    title: str
    body: str  #: Markdown source (see body_html)
    price: str
    contact: str
    created_at: int
    updated_at: int
    expires_at: int | None
    pinned: bool
    actor: str | None  #: organiser account that posted it (None: approved submission's node)
    from_submission: str | None = None  #: submission id when a resident submitted it
    body_html: str = ""  #: ``body`` rendered and sanitised by node.markdown when stored
    excerpt: str = ""  #: the start of ``body`` as plain text


@frozen
class Notice:
    """A notice; urgent ones (water outage, road closure) are shown first everywhere."""

    id: str
    title: str
    body: str  #: Markdown source
    urgent: bool
    pinned: bool
    created_at: int
    updated_at: int
    expires_at: int | None
    actor: str | None
    body_html: str = ""  #: ``body`` rendered and sanitised by node.markdown when stored
    excerpt: str = ""  #: the start of ``body`` as plain text


@frozen
class LibraryItem:
    """A file in the library, stored once by its SHA-256."""

    id: str
    title: str
    author: str
    language: str
    description: str  #: Markdown source
    collection: str
    media_type: str  #: one of MEDIA_TYPES
    mime: str
    sha256: str
    size: int
    filename: str  #: a safe download name (no path), e.g. "water-guide.pdf"
    created_at: int
    updated_at: int
    actor: str | None
    description_html: str = ""  #: ``description`` rendered and sanitised when stored
    excerpt: str = ""  #: the start of ``description`` as plain text


@frozen
class Account:
    """An organiser account; replicated so that organisers can sign in on any node."""

    name: str
    display_name: str
    role: str  #: one of ROLES
    password_hash: str  #: Argon2id encoded hash
    disabled: bool
    created_at: int
    updated_at: int


@frozen
class Submission:
    """A resident's proposed listing, waiting for (or decided by) a moderator."""

    id: str
    category: str
    title: str
    body: str  #: "" once erased after the retention period
    price: str
    contact: str
    submitted_at: int
    status: Literal["pending", "approved", "rejected"]
    decided_by: str | None
    decided_at: int | None
    reason: str
    listing_id: str | None  #: the listing created on approval
    body_html: str = ""  #: ``body`` rendered and sanitised by node.markdown when stored


@frozen
class AuditEvent:
    """One thing an organiser did, taken from the log."""

    entry_id: str
    at: int
    actor: str | None
    kind: str  #: entry kind, e.g. "listing.post"
    target: str | None
    summary: str  #: short text, e.g. the title concerned
    node: str  #: fingerprint of the node that signed it
    fields: tuple[str, ...] = ()  #: an edit's changed fields, by name (empty for others)


@frozen
class SearchHit:
    """One search result across listings, notices and the library."""

    kind: Literal["listing", "notice", "library"]
    id: str
    title: str
    snippet: str  #: plain text around the match; the portal escapes it
    rank: float


@frozen
class Page(Generic[T_co]):
    """One page of a longer list."""

    items: Sequence[T_co] = field(default_factory=tuple)
    page: int = 1
    per_page: int = 20
    total: int = 0

    @property
    def pages(self) -> int:
        """Number of pages (at least 1)."""
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        """Whether a later page exists."""
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        """Whether an earlier page exists."""
        return self.page > 1
