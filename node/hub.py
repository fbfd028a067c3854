"""The hub's actions: what organisers, residents and scripts may do to content.

Both the portal's forms and the ``meshhub post``/``organiser`` commands go
through :class:`Hub`, so the same validation (``ValidationError`` naming the
field) and the same permission checks (``PermissionDenied``) apply
everywhere. Each action appends one or more signed entries to the store.

Roles: ``organiser`` posts, edits, expires, pins and deletes listings and
notices and manages the library; ``moderator`` also decides residents'
submissions; ``admin`` also manages accounts. The checks happen on the node
where the organiser acts; other nodes trust the signing node's decision.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

from node import blobs as _blobs
from node.errors import NotFound, PermissionDenied, ValidationError
from node.messages import N_, msg
from node.store import validate as v
from node.store.kinds import editable
from node.store.models import ROLES, Account, LibraryItem, Listing, Notice, Submission

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from node.config import NodeConfig
    from node.store import Store

MIB = 1024 * 1024
#: Families whose items organisers post, edit, expire and delete alike.
PostFamily = Literal["listing", "notice"]
#: Families whose items organisers edit and delete (library items are added from files).
Family = Literal["listing", "notice", "library"]
Item = Listing | Notice | LibraryItem
#: What an optional field of a new listing or notice is when not given (docs/entry-format.md).
_DEFAULTS: dict[str, dict[str, object]] = {
    "listing": {"price": "", "contact": "", "expires_at": None, "pinned": False},
    "notice": {"urgent": False, "pinned": False, "expires_at": None},
}


def default_password_hasher() -> PasswordHasher:
    """Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).

    Memory is per check, for the moment of the check; a :class:`Hub` checks one
    password at a time, so a crowd signing in at once (or someone hammering the
    sign-in form from every portal thread) costs 19 MiB, not 19 per thread, on a
    Pi Zero 2 W's 512 MB, while an offline guess still costs 19 MiB.
    """
    from argon2 import PasswordHasher, Type

    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)


class Hub:
    """Validated, permission-checked content actions over a :class:`node.store.Store`."""

    def __init__(self, store: Store, *, clock: Callable[[], float] | None = None,
                 blobs: _blobs.BlobStore | None = None,
                 upload_max_bytes: int = 200 * MIB,
                 password_hasher: PasswordHasher | None = None,
                 retention_days: int = 30, quota_bytes: int | None = None,
                 urgent_notice_hours: int = 48) -> None:
        self.store = store
        self.clock = clock or time.time
        self.blobs = blobs or _blobs.BlobStore(self.store.path.parent / "library")
        self.upload_max_bytes = upload_max_bytes
        self._hasher = password_hasher  # the default is made on first use (sign-in)
        self.retention_days = retention_days
        self.quota_bytes = quota_bytes  #: disk space the library may use (None: no limit)
        #: An urgent notice given no expiry ends this long after it is posted or made urgent.
        self.urgent_notice_seconds = urgent_notice_hours * 3600
        self._dummy_hash: str | None = None
        #: One password hashed or checked at a time (see :func:`default_password_hasher`).
        self._hashing = threading.Lock()

    @property
    def hasher(self) -> PasswordHasher:
        """The password hasher; argon2 is imported only when a password is first checked."""
        if self._hasher is None:
            self._hasher = default_password_hasher()
        return self._hasher

    @hasher.setter
    def hasher(self, value: PasswordHasher) -> None:
        self._hasher = value

    def _hash(self, password: str) -> str:
        """``password`` hashed, one hashing at a time (its memory is the hasher's)."""
        with self._hashing:
            return self.hasher.hash(password)

    def _verify(self, password_hash: str, password: str) -> None:
        """Raise argon2's VerificationError unless ``password`` matches; one at a time."""
        with self._hashing:
            self.hasher.verify(password_hash, password)

    def _now(self) -> int:
        return int(self.clock())

    def _require(self, actor: str | None, role: str) -> Account:
        """The acting account, if it exists, is enabled and has at least ``role``."""
        account = self.store.account(actor) if isinstance(actor, str) else None
        if account is None or account.disabled:
            raise PermissionDenied(f"{actor!r} is not an enabled organiser account")
        if ROLES.index(account.role) < ROLES.index(role):
            raise PermissionDenied(f"{actor} is a {account.role}; this needs the {role} role")
        return account

    def require_role(self, actor: str | None, role: str) -> Account:
        """:meth:`_require` for actions kept outside this class (:mod:`node.broadcast`)."""
        return self._require(actor, role)

    def check_notice_fields(self, **fields: object) -> dict[str, Any]:
        """A notice's fields checked as :meth:`post` checks them (for :mod:`node.broadcast`)."""
        return self._check_fields(fields, now=self._now())

    @staticmethod
    def _raise(problems: Mapping[str, str]) -> None:
        if problems:
            raise ValidationError(dict(problems))

    def _check_fields(self, fields: dict[str, Any], *, now: int,
                      old_expiry: int | None = None) -> dict[str, Any]:
        """Validate content fields by name; returns cleaned values or raises."""
        problems: dict[str, str] = {}
        clean: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "category":
                clean[name] = v.category(problems, value)
            elif name == "expires_at":
                # An unchanged expiry may already lie in the past (an expired item being edited).
                clean[name] = value if value == old_expiry and value is not None \
                    else v.expiry(problems, value, now)
            elif name in ("pinned", "urgent"):
                clean[name] = v.flag(problems, name, value)
            elif name == "language":
                clean[name] = v.language(problems, value)
            elif name == "collection":
                clean[name] = self._known_collection(v.text(problems, name, value))
            else:
                clean[name] = v.text(problems, name, value)
        self._raise(problems)
        return clean

    def _known_collection(self, name: str) -> str:
        """An existing collection's spelling when ``name`` differs from it only in case or
        spacing ("practical  guides" joins "Practical guides" instead of starting another)."""
        wanted = " ".join(name.split()).casefold()
        for existing, _count in self.store.collections() if wanted else ():
            if " ".join(existing.split()).casefold() == wanted:
                return existing
        return name

    # --- listings, notices and library items, by family ----------------------
    def find(self, family: Family, item_id: str) -> Item | None:
        """The live item of ``family`` with this id, expired or not; None if unknown or deleted."""
        readers: dict[str, Callable[[str], Item | None]] = {
            "listing": self.store.listing, "notice": self.store.notice,
            "library": self.store.library_item}
        return readers[family](item_id)

    def _item(self, family: Family, item_id: str) -> Item:
        item = self.find(family, item_id)
        if item is None:
            what = "library item" if family == "library" else family
            raise NotFound(f"no {what} {item_id} (it may have been deleted)")
        return item

    def post(self, family: PostFamily, actor: str, **fields: object) -> Listing | Notice:
        """Publish a listing or notice as ``actor``; returns it as the views now show it.

        ``fields`` are the family's editable fields (:func:`node.store.kinds.editable`);
        the optional ones default as in the entry format. An urgent notice without
        an expiry ends after the node's default time (``portal.urgent_notice_hours``).
        """
        self._require(actor, "organiser")
        names = editable(family)
        self._raise({k: msg(N_("cannot be changed here")) for k in fields if k not in names})
        given = {**_DEFAULTS[family], **fields}
        if family == "notice" and given["urgent"] is True and given["expires_at"] is None:
            given["expires_at"] = self._now() + self.urgent_notice_seconds
        self._raise({k: msg(N_("required")) for k in names if k not in given})
        clean = self._check_fields({k: given[k] for k in names}, now=self._now())
        wire = self.store.append(f"{family}.post", clean, actor=actor)
        return cast("Listing | Notice", self._item(family, wire["id"]))

    def edit(self, family: Family, actor: str, item_id: str, **changes: object) -> Item:
        """Change fields of an item (any of its family's editable fields).

        Unchanged fields are left out of the entry; nothing is signed when nothing changes.
        """
        self._require(actor, "organiser")
        current = self._item(family, item_id)
        unknown = {k: msg(N_("cannot be changed here")) for k in changes
                   if k not in editable(family)}
        self._raise(unknown)
        clean = self._check_fields(changes, now=self._now(),
                                   old_expiry=getattr(current, "expires_at", None))
        patch = {k: val for k, val in clean.items() if getattr(current, k) != val}
        if isinstance(current, Notice) and patch.get("urgent", current.urgent) \
                and patch.get("expires_at", current.expires_at) is None:
            patch["expires_at"] = self._now() + self.urgent_notice_seconds  # as post() does
        if patch:
            self.store.append(f"{family}.edit", patch, actor=actor, target=item_id)
        return self._item(family, item_id)

    def expire(self, family: PostFamily, actor: str, item_id: str) -> Listing | Notice:
        """End a listing or notice now.

        It disappears from residents' pages, stays in the audit, and can be edited back.
        """
        self._require(actor, "organiser")
        self._item(family, item_id)
        self.store.append(f"{family}.edit", {"expires_at": self._now()}, actor=actor,
                          target=item_id)
        return cast("Listing | Notice", self._item(family, item_id))

    def delete(self, family: Family, actor: str, item_id: str) -> None:
        """Delete an item for good: its text is erased on every node.

        A library item's file goes too, unless another item uses it.
        """
        self._require(actor, "organiser")
        item = self._item(family, item_id)
        self.store.append(f"{family}.delete", {}, actor=actor, target=item_id)
        if isinstance(item, LibraryItem):
            self._drop_blob_if_unused(item.sha256)

    def post_listing(self, actor: str, *, category: str, title: str, body: str,
                     price: str = "", contact: str = "", expires_at: int | None = None,
                     pinned: bool = False) -> Listing:
        """Publish a listing as ``actor`` (:meth:`post` with its fields spelled out)."""
        return cast(Listing, self.post("listing", actor, category=category, title=title,
                                       body=body, price=price, contact=contact,
                                       expires_at=expires_at, pinned=pinned))

    def post_notice(self, actor: str, *, title: str, body: str, urgent: bool = False,
                    pinned: bool = False, expires_at: int | None = None) -> Notice:
        """Publish a notice (:meth:`post` with its fields spelled out)."""
        return cast(Notice, self.post("notice", actor, title=title, body=body, urgent=urgent,
                                      pinned=pinned, expires_at=expires_at))

    # --- library ----------------------------------------------------------
    def add_library_file(self, actor: str, stream: BinaryIO, *, filename: str, title: str,
                         author: str = "", language: str = "", description: str = "",
                         collection: str = "", max_bytes: int | None = None) -> LibraryItem:
        """Store an uploaded file by SHA-256 (type decided by content) and list it.

        Optional fields left empty are filled from the file's own metadata (EPUB,
        PDF, audio tags, ZIM); a damaged ZIM archive is refused (node.library).
        """
        self._require(actor, "organiser")
        given = {"title": title, "author": author, "language": language,
                 "description": description, "collection": collection}
        self._check_fields(given, now=self._now())  # before storing the upload
        limit = self.upload_max_bytes if max_bytes is None else max_bytes
        room = self.library_room()
        if room is not None and room < limit:
            self.require_library_room(1, room=room)  # a full library refuses before reading
            try:
                sha, _size = self.blobs.put(stream, room)
            except ValidationError:
                raise self._library_full(room) from None
        else:
            sha, _size = self.blobs.put(stream, limit)
        return self.add_stored_library_file(actor, sha, filename=filename, title=title,
                                            author=author, language=language,
                                            description=description, collection=collection)

    def library_room(self) -> int | None:
        """Bytes the library may still take under its quota (``None``: no quota)."""
        return None if self.quota_bytes is None else max(0, self.quota_bytes - self.blobs.usage())

    def require_library_room(self, size: int, *, room: int | None = None) -> None:
        """Refuse (``ValidationError`` on ``file``) a new file of ``size`` bytes that the
        quota has no room for; the one quota check of uploads and ``meshhub library add``.

        ``room`` is :meth:`library_room` when the caller already knows it (an import
        of many files keeps count instead of measuring the library for each).
        """
        if self.quota_bytes is None:
            return
        if room is None:
            room = max(0, self.quota_bytes - self.blobs.usage())
        if size > room:
            raise self._library_full(room)

    def _library_full(self, room: int) -> ValidationError:
        return ValidationError({"file": msg(
            N_("the library has room for %(room).1f MiB more (its quota is %(quota)g MiB); "
               "remove items or raise portal.library_quota_mb"),
            room=room / MIB, quota=(self.quota_bytes or 0) / MIB)})

    def add_stored_library_file(self, actor: str, sha256: str, *, filename: str,
                                title: str = "", author: str = "", language: str = "",
                                description: str = "", collection: str = "",
                                verify: bool = True) -> LibraryItem:
        """List a file already in the BlobStore (``meshhub library add`` hard-links big files).

        Empty fields (the title too) are filled from the file's own metadata.
        ``verify=False`` skips a ZIM archive's whole-file checksum (very large archives).
        """
        from node.library.metadata import read_metadata

        self._require(actor, "organiser")
        path = self.blobs.path(sha256)
        if not path.is_file():
            raise NotFound(f"no library file {sha256} in {self.blobs.root}")
        try:
            media_type, mime, ext = _blobs.detect_type(path)
            found = read_metadata(path, media_type, verify_zim=verify)
            given = {"title": title, "author": author, "language": language,
                     "description": description, "collection": collection}
            filled = {k: found.get(k, "") if isinstance(val, str) and not val.strip() else val
                      for k, val in given.items()}
            meta = self._check_fields(filled, now=self._now())
        except ValidationError:
            self._drop_blob_if_unused(sha256)
            raise
        body = {**meta, "media_type": media_type, "mime": mime, "sha256": sha256,
                "size": path.stat().st_size, "filename": _blobs.safe_filename(filename, ext)}
        wire = self.store.append("library.add", body, actor=actor)
        return self._library_item(wire["id"])

    def _drop_blob_if_unused(self, sha: str) -> None:
        if not self.store.library_items_by_sha(sha):
            self.blobs.delete(sha)

    def _library_item(self, item_id: str) -> LibraryItem:
        return cast(LibraryItem, self._item("library", item_id))

    def edit_library_item(self, actor: str, item_id: str, **changes: object) -> LibraryItem:
        """Change a library item's title, author, language, description or collection."""
        return cast(LibraryItem, self.edit("library", actor, item_id, **changes))

    def delete_library_item(self, actor: str, item_id: str) -> None:
        """Remove an item from the library (and its file, unless another item uses it)."""
        self.delete("library", actor, item_id)

    # --- residents' submissions -------------------------------------------
    def submit_listing(self, *, category: str, title: str, body: str, price: str = "",
                       contact: str = "") -> Submission:
        """A resident proposes a listing; it waits in the moderation queue."""
        fields = self._check_fields({"category": category, "title": title, "body": body,
                                     "price": price, "contact": contact}, now=self._now())
        wire = self.store.append("submission.create", fields)
        return self._submission(wire["id"])

    def report_listing(self, listing_id: str, *, reason: str, details: str = "") -> None:
        """A resident reports a live listing to this node's moderators (kept locally)."""
        from node.store.reports import REPORT_REASONS

        listing = self.store.listing(listing_id)
        if listing is None or (listing.expires_at is not None
                               and listing.expires_at <= self._now()):
            raise NotFound(f"no listing {listing_id} to report (deleted or ended)")
        problems: dict[str, str] = {}
        if reason not in REPORT_REASONS:
            problems["reason"] = msg(N_("choose why you report it"))
        if not isinstance(details, str) or len(details.strip()) > 500:
            problems["details"] = msg(N_("at most %(max)d characters (this has %(count)d)"),
                                      max=500, count=len(details))
        self._raise(problems)
        self.store.add_report(listing_id, reason, details.strip(), self._now())

    def dismiss_reports(self, actor: str, listing_id: str) -> int:
        """A moderator dismisses the reports of a listing (it was fine); returns how many."""
        self._require(actor, "moderator")
        return self.store.dismiss_reports(listing_id)

    def _submission(self, submission_id: str) -> Submission:
        submission = self.store.submission(submission_id)
        if submission is None:
            raise NotFound(f"no submission {submission_id}")
        return submission

    def decide_submission(self, actor: str, submission_id: str, *, approve: bool,
                          reason: str = "") -> Submission:
        """A moderator approves (creating the listing) or rejects a submission."""
        self._require(actor, "moderator")
        sub = self._submission(submission_id)
        problems: dict[str, str] = {}
        reason = v.text(problems, "reason", reason)
        if sub.status != "pending":
            problems["submission"] = _already_decided(sub)
        elif approve and not sub.title:
            problems["submission"] = msg(N_("its text was erased after the retention period; "
                                            "it can only be rejected"))
        self._raise(problems)
        with self.store.batch() as add:
            listing_id = None
            if approve:
                listing = add("listing.post", {
                    "category": sub.category, "title": sub.title, "body": sub.body,
                    "price": sub.price, "contact": sub.contact, "expires_at": None,
                    "pinned": False, "from_submission": sub.id}, actor=actor)
                listing_id = listing["id"]
            add("submission.decide", {"approve": bool(approve), "reason": reason,
                                      "listing_id": listing_id},
                actor=actor, target=submission_id)
        return self._submission(submission_id)

    def erase_expired_submissions(self) -> int:
        """Erase residents' submissions older than the retention period (privacy)."""
        return self.store.erase_expired_submissions(self.clock(),
                                                    retention_days=self.retention_days)

    # --- accounts ---------------------------------------------------------
    def _account(self, name: str) -> Account:
        account = self.store.account(name) if isinstance(name, str) else None
        if account is None:
            raise NotFound(f"no organiser account {name!r}")
        return account

    def create_account(self, actor: str | None, *, name: str, password: str, role: str,
                       display_name: str = "") -> Account:
        """Create an organiser account (``actor`` None only from the local CLI)."""
        if actor is not None:
            self._require(actor, "admin")
        problems: dict[str, str] = {}
        name = v.account_name(problems, name)
        role = v.role(problems, role)
        display_name = v.text(problems, "display_name", display_name)
        v.password(problems, password)
        if name and self.store.account(name) is not None:
            problems["name"] = msg(N_("an account called '%(name)s' already exists"), name=name)
        self._raise(problems)
        self.store.append("account.create", {
            "name": name, "display_name": display_name or name, "role": role,
            "password_hash": self._hash(password), "disabled": False}, actor=actor)
        return self._account(name)

    def set_password(self, actor: str | None, name: str, new_password: str) -> Account:
        """Change a password (one's own, or anyone's for an admin)."""
        if actor is not None:
            self._require(actor, ROLES[0] if actor == name else "admin")  # anyone: own password
        self._account(name)
        problems: dict[str, str] = {}
        v.password(problems, new_password)
        self._raise(problems)
        self.store.append("account.update", {
            "name": name, "password_hash": self._hash(new_password)}, actor=actor)
        return self._account(name)

    def _keeps_an_admin(self, name: str) -> bool:
        return any(a.role == "admin" and not a.disabled and a.name != name
                   for a in self.store.accounts())

    def set_role(self, actor: str, name: str, role: str) -> Account:
        """Change an account's role (admins only)."""
        self._require(actor, "admin")
        account = self._account(name)
        problems: dict[str, str] = {}
        role = v.role(problems, role)
        if not problems and account.role == "admin" and role != "admin" \
                and not self._keeps_an_admin(name):
            problems["role"] = msg(N_("%(name)s is the last admin; make someone else admin first"),
                                   name=name)
        self._raise(problems)
        if role != account.role:
            self.store.append("account.update", {"name": name, "role": role}, actor=actor)
        return self._account(name)

    def set_disabled(self, actor: str, name: str, disabled: bool) -> Account:
        """Disable or re-enable an account (admins only)."""
        self._require(actor, "admin")
        account = self._account(name)
        if disabled and account.role == "admin" and not self._keeps_an_admin(name):
            raise ValidationError({"disabled": msg(N_("%(name)s is the last admin; make someone "
                                                      "else admin first"), name=name)})
        if bool(disabled) != account.disabled:
            self.store.append("account.update", {"name": name, "disabled": bool(disabled)},
                              actor=actor)
        return self._account(name)

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account if ``password`` is right and it is enabled, else ``None``.

        An unknown or disabled account costs the same hashing work as a wrong
        password, so timing does not tell which names exist.
        """
        from argon2.exceptions import InvalidHashError, VerificationError

        account = self.store.account(name) if isinstance(name, str) else None
        if account is None or account.disabled:
            if self._dummy_hash is None:
                self._dummy_hash = self._hash("not-a-real-password")
            with contextlib.suppress(VerificationError):
                self._verify(self._dummy_hash, str(password))
            return None
        try:
            self._verify(account.password_hash, str(password))
        except (VerificationError, InvalidHashError):
            return None
        return account


def _already_decided(sub: Submission) -> str:
    """Why a decided submission cannot be decided again ("already approved by mo")."""
    if sub.status == "approved":
        return msg(N_("already approved by %(who)s"), who=sub.decided_by)
    if sub.status == "rejected":
        return msg(N_("already rejected by %(who)s"), who=sub.decided_by)
    return f"already {sub.status} by {sub.decided_by}"


def open_hub(cfg: NodeConfig, *, clock: Callable[[], float] | None = None,
             password_hasher: PasswordHasher | None = None) -> tuple[Store, Hub]:
    """Open this node's store (``data_dir/hub.sqlite3``) and a Hub over it.

    Uses the node identity (created if absent), the node's trust (the signed
    community registry when installed, else node.toml's keys), the
    library under ``data_dir/library`` and the configured limits. The caller
    closes the store.
    """
    from node.identity import load_or_create_identity
    from node.store import Store
    from node.trust.choice import trust_for_node

    data_dir = cfg.data_dir
    identity = load_or_create_identity(data_dir)
    trust, _registry = trust_for_node(cfg, identity)
    store = Store.open(data_dir / "hub.sqlite3", identity, trust, clock=clock)
    hub = Hub(store, clock=clock, blobs=_blobs.BlobStore(data_dir / "library"),
              upload_max_bytes=cfg.portal.upload_max_mb * MIB,
              password_hasher=password_hasher,
              retention_days=cfg.privacy.submission_retention_days,
              quota_bytes=cfg.portal.library_quota_mb * MIB,
              urgent_notice_hours=cfg.portal.urgent_notice_hours)
    return store, hub
