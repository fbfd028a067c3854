"""The hub's actions: what organisers, residents and scripts may do to content.

Both the portal's forms and the ``meshhub post``/``organiser`` commands go
through :class:`Hub`, so the same validation (``ValidationError`` naming the
field) and the same permission checks (``PermissionDenied``) apply
everywhere. Each action appends one or more signed entries to the store.

CONTRACT (filled in by the store implementation; signatures are fixed):
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from node.store.models import Account, LibraryItem, Listing, Notice, Submission


class Hub:
    """Validated, permission-checked content actions over a :class:`node.store.Store`."""

    def __init__(self, store: object, *, clock: Callable[[], float] | None = None) -> None:
        raise NotImplementedError

    # --- listings ---------------------------------------------------------
    def post_listing(self, actor: str, *, category: str, title: str, body: str,
                     price: str = "", contact: str = "", expires_at: int | None = None,
                     pinned: bool = False) -> Listing:
        """Publish a listing as ``actor``; returns it as the views now show it."""
        raise NotImplementedError

    def edit_listing(self, actor: str, listing_id: str, **changes: object) -> Listing:
        """Change fields of a listing (any of post_listing's keyword fields)."""
        raise NotImplementedError

    def expire_listing(self, actor: str, listing_id: str) -> Listing:
        """End a listing now (it disappears from residents' pages, stays in the audit)."""
        raise NotImplementedError

    def delete_listing(self, actor: str, listing_id: str) -> None:
        """Delete a listing for good; its text is erased on every node."""
        raise NotImplementedError

    # --- notices ----------------------------------------------------------
    def post_notice(self, actor: str, *, title: str, body: str, urgent: bool = False,
                    pinned: bool = False, expires_at: int | None = None) -> Notice:
        """Publish a notice."""
        raise NotImplementedError

    def edit_notice(self, actor: str, notice_id: str, **changes: object) -> Notice:
        """Change fields of a notice."""
        raise NotImplementedError

    def expire_notice(self, actor: str, notice_id: str) -> Notice:
        """End a notice now."""
        raise NotImplementedError

    def delete_notice(self, actor: str, notice_id: str) -> None:
        """Delete a notice for good."""
        raise NotImplementedError

    # --- library ----------------------------------------------------------
    def add_library_file(self, actor: str, stream: BinaryIO, *, filename: str, title: str,
                         author: str = "", language: str = "", description: str = "",
                         collection: str = "", max_bytes: int | None = None) -> LibraryItem:
        """Store an uploaded file by SHA-256 (type decided by content) and list it."""
        raise NotImplementedError

    def edit_library_item(self, actor: str, item_id: str, **changes: object) -> LibraryItem:
        """Change a library item's title, author, language, description or collection."""
        raise NotImplementedError

    def delete_library_item(self, actor: str, item_id: str) -> None:
        """Remove an item from the library."""
        raise NotImplementedError

    # --- residents' submissions -------------------------------------------
    def submit_listing(self, *, category: str, title: str, body: str, price: str = "",
                       contact: str = "") -> Submission:
        """A resident proposes a listing; it waits in the moderation queue."""
        raise NotImplementedError

    def decide_submission(self, actor: str, submission_id: str, *, approve: bool,
                          reason: str = "") -> Submission:
        """A moderator approves (creating the listing) or rejects a submission."""
        raise NotImplementedError

    # --- accounts ---------------------------------------------------------
    def create_account(self, actor: str | None, *, name: str, password: str, role: str,
                       display_name: str = "") -> Account:
        """Create an organiser account (``actor`` None only from the local CLI)."""
        raise NotImplementedError

    def set_password(self, actor: str | None, name: str, new_password: str) -> Account:
        """Change a password (one's own, or anyone's for an admin)."""
        raise NotImplementedError

    def set_role(self, actor: str, name: str, role: str) -> Account:
        """Change an account's role (admins only)."""
        raise NotImplementedError

    def set_disabled(self, actor: str, name: str, disabled: bool) -> Account:
        """Disable or re-enable an account (admins only)."""
        raise NotImplementedError

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account if ``password`` is right and it is enabled, else ``None``."""
        raise NotImplementedError
