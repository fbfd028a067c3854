"""Organiser accounts through the Hub: roles, passwords, sign-in, last admin."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.config import parse_config
from node.errors import NotFound, PermissionDenied, ValidationError
from node.hub import Hub, default_password_hasher, open_hub
from node.identity import Identity
from node.store import Store
from tests.node.test_store_support import FakeClock, cheap_hasher, make_hub, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "hub.sqlite3", Identity.generate()) as s:
        yield s


@pytest.fixture
def hub(store: Store) -> Hub:
    return make_hub(store, FakeClock())


def test_passwords_are_argon2id_hashes(hub: Hub, store: Store) -> None:
    account = store.account("ada")
    assert account.password_hash.startswith("$argon2id$")
    assert "correct horse" not in str(store.entries_since({}))


def test_default_hasher_is_argon2id() -> None:
    assert default_password_hasher().hash("x" * 10).startswith("$argon2id$")


def test_authenticate(hub: Hub) -> None:
    assert hub.authenticate("ada", "correct horse").name == "ada"
    assert hub.authenticate("ada", "wrong horse!") is None
    assert hub.authenticate("nobody", "correct horse") is None
    hub.set_disabled("ada", "olu", True)
    assert hub.authenticate("olu", "correct horse") is None


def test_one_password_is_checked_at_a_time(hub: Hub) -> None:
    """Each check takes the hasher's memory (19 MiB): sign-ins from every portal thread
    at once must not multiply it."""
    inside = threading.Semaphore(0)
    go = threading.Event()
    real = hub.hasher

    class Watched:
        """The real hasher, holding each check until ``go`` (and saying it got there)."""

        def hash(self, password: str) -> str:
            return real.hash(password)

        def verify(self, password_hash: str, password: str) -> Any:
            inside.release()
            assert go.wait(30), "the test never let the check finish"
            return real.verify(password_hash, password)

    hub.hasher = Watched()  # type: ignore[assignment]
    found: list[object] = []
    threads = [threading.Thread(target=lambda: found.append(hub.authenticate("ada",
                                                                             "correct horse")))
               for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        assert inside.acquire(timeout=30), "no check started"
        assert not inside.acquire(timeout=0.5), "a second password check ran beside the first"
    finally:
        go.set()
        for thread in threads:
            thread.join(30)
    assert [a.name for a in found] == ["ada"] * 4  # type: ignore[attr-defined]


def test_short_password_has_a_clear_message(hub: Hub) -> None:
    with pytest.raises(ValidationError) as info:
        hub.create_account("ada", name="kim", password="short", role="organiser")
    assert info.value.fields == {"password": "must be at least 10 characters "
                                             "(a few words are fine)"}


def test_bad_name_role_and_duplicate(hub: Hub) -> None:
    with pytest.raises(ValidationError) as info:
        hub.create_account("ada", name="Kim Smith", password="long enough pw", role="boss")
    assert set(info.value.fields) == {"name", "role"}
    with pytest.raises(ValidationError, match="already exists"):
        hub.create_account("ada", name="olu", password="long enough pw", role="organiser")


def test_only_admins_manage_accounts(hub: Hub) -> None:
    with pytest.raises(PermissionDenied, match="needs the admin role"):
        hub.create_account("olu", name="kim", password="long enough pw", role="admin")
    with pytest.raises(PermissionDenied):
        hub.set_role("olu", "olu", "admin")
    with pytest.raises(PermissionDenied):
        hub.set_password("olu", "ada", "a new password")


def test_own_password_and_admin_reset(hub: Hub) -> None:
    hub.set_password("olu", "olu", "my own new password")
    assert hub.authenticate("olu", "my own new password")
    hub.set_password("ada", "olu", "reset by admin!!")
    assert hub.authenticate("olu", "reset by admin!!")
    assert hub.authenticate("olu", "my own new password") is None
    hub.set_password(None, "olu", "reset from the cli")
    assert hub.authenticate("olu", "reset from the cli")
    with pytest.raises(NotFound):
        hub.set_password(None, "nobody", "whatever long")


def test_roles_and_last_admin(hub: Hub) -> None:
    assert hub.set_role("ada", "olu", "moderator").role == "moderator"
    with pytest.raises(ValidationError, match="last admin"):
        hub.set_role("ada", "ada", "organiser")
    with pytest.raises(ValidationError, match="last admin"):
        hub.set_disabled("ada", "ada", True)
    hub.set_role("ada", "olu", "admin")
    assert hub.set_disabled("olu", "ada", True).disabled


def test_account_changes_appear_in_audit(hub: Hub, store: Store) -> None:
    hub.set_role("ada", "olu", "moderator")
    event = store.audit().items[0]
    assert (event.actor, event.kind, event.summary) == ("ada", "account.update", "olu: role")


def test_open_hub_from_config(tmp_path: Path) -> None:
    cfg = parse_config(f"[node]\ndata_dir = '{tmp_path}'\n[portal]\nupload_max_mb = 3\n")
    store, hub = open_hub(cfg, password_hasher=cheap_hasher())
    try:
        assert store.path == tmp_path / "hub.sqlite3"
        assert (tmp_path / "identity.key").exists()
        assert hub.upload_max_bytes == 3 * 1024 * 1024
        assert hub.blobs.root == tmp_path / "library"
        assert store.trust.is_trusted(store.identity.public_key)
        hub.create_account(None, name="ada", password="correct horse", role="admin")
        assert hub.authenticate("ada", "correct horse")
    finally:
        store.close()
