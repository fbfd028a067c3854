"""The emergency broadcast as entries: who may send it, its end, and every node's own check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.broadcast import (
    MAX_SECONDS,
    cancel_broadcast,
    current_broadcast,
    send_broadcast,
    set_permission,
)
from node.errors import NotFound, PermissionDenied, ValidationError
from node.hub import Hub
from node.identity import Identity
from node.store import Store
from tests.node.test_store_support import T0, FakeClock, make_hub, open_store

HOUR = 3600


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pair(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[Hub, Store]]:
    """A hub on node A, and node B's store (trusting A) that receives A's entries."""
    a, b = Identity.generate(), Identity.generate()
    with open_store(tmp_path / "a.sqlite3", a, b, clock=clock) as store_a, \
            open_store(tmp_path / "b.sqlite3", b, a, clock=clock) as store_b:
        yield make_hub(store_a, clock), store_b


def replicate(hub: Hub, other: Store) -> None:
    report = other.ingest(hub.store.entries_since(other.vector()))
    assert not report.rejected, report.rejected


def test_an_admin_broadcasts_and_every_node_holds_it_until_its_end(
        pair: tuple[Hub, Store], clock: FakeClock) -> None:
    hub, other = pair
    sent = send_broadcast(hub, "ada", title="Water off", body="Boil water.", ends_at=T0 + HOUR)
    notice = hub.store.notice(sent.notice)
    assert notice is not None and notice.urgent and notice.expires_at == T0 + HOUR
    replicate(hub, other)
    there = current_broadcast(other.path, clock())
    assert there == sent and (there.actor, there.ends_at) == ("ada", T0 + HOUR)
    # It ends by itself at its end time, on every node.
    assert current_broadcast(other.path, T0 + HOUR - 1) is not None
    assert current_broadcast(other.path, T0 + HOUR) is None


def test_cancel_ends_it_everywhere_and_keeps_the_notice(
        pair: tuple[Hub, Store], clock: FakeClock) -> None:
    hub, other = pair
    sent = send_broadcast(hub, "ada", title="Flood", body="Move up.", ends_at=T0 + HOUR)
    clock.advance(60)
    cancel_broadcast(hub, "ada")
    replicate(hub, other)
    assert current_broadcast(other.path, clock()) is None
    assert other.notice(sent.notice) is not None
    with pytest.raises(NotFound, match="no emergency broadcast is in force"):
        cancel_broadcast(hub, "ada")


@pytest.mark.parametrize(("ends_at", "problem"), [
    (None, "an emergency broadcast needs an end time"),
    (T0 + MAX_SECONDS + 1, "must be at most 7 days ahead; send a new broadcast then if it "
                           "is still needed"),
    (T0, "must be in the future"),
])
def test_an_end_time_missing_or_too_far_is_refused_clearly(
        pair: tuple[Hub, Store], ends_at: int | None, problem: str) -> None:
    hub, _ = pair
    with pytest.raises(ValidationError) as info:
        send_broadcast(hub, "ada", title="Water off", body="x", ends_at=ends_at)
    assert info.value.fields == {"ends_at": problem}
    assert current_broadcast(hub.store.path, T0) is None and hub.store.notices() == []


def test_only_admins_and_those_granted_may_broadcast(pair: tuple[Hub, Store]) -> None:
    hub, _ = pair
    with pytest.raises(PermissionDenied, match="'olu' may not send emergency broadcasts"):
        send_broadcast(hub, "olu", title="Hi", body="x", ends_at=T0 + HOUR)
    with pytest.raises(PermissionDenied, match="admin"):
        set_permission(hub, "olu", "olu", True)  # only an admin grants it
    set_permission(hub, "ada", "olu", True)
    assert send_broadcast(hub, "olu", title="Hi", body="x", ends_at=T0 + HOUR).actor == "olu"
    set_permission(hub, "ada", "olu", False)
    # Withdrawn: olu's broadcast no longer counts anywhere, and olu cannot cancel.
    assert current_broadcast(hub.store.path, T0) is None
    with pytest.raises(PermissionDenied):
        cancel_broadcast(hub, "olu")


def test_a_broadcast_from_an_account_without_the_permission_is_refused_everywhere(
        pair: tuple[Hub, Store], clock: FakeClock) -> None:
    hub, other = pair
    # A node that skips the check (or a modified one) signs olu's broadcast anyway.
    notice = hub.post_notice("olu", title="Free pizza", body="Come now.", urgent=True)
    hub.store.append("broadcast.set", {"notice": notice.id, "ends_at": T0 + HOUR}, actor="olu")
    replicate(hub, other)
    assert current_broadcast(hub.store.path, clock()) is None
    assert current_broadcast(other.path, clock()) is None
    # An end beyond 7 days after it was made counts nowhere either, even from an admin.
    hub.store.append("broadcast.set", {"notice": notice.id, "ends_at": T0 + MAX_SECONDS + 60},
                     actor="ada")
    replicate(hub, other)
    assert current_broadcast(other.path, clock()) is None


def test_no_database_means_no_broadcast(tmp_path: Path) -> None:
    assert current_broadcast(tmp_path / "missing.sqlite3", T0) is None
