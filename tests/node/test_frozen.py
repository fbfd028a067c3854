"""``@frozen`` (node/frozen.py): a frozen dataclass with shared methods behaves as
``@dataclass(frozen=True)`` does, and its classes share their methods' code."""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from node.frozen import frozen
from node.store.models import Listing

ROOT = Path(__file__).resolve().parents[2]


def _pair(body: dict[str, object]) -> tuple[type, type]:
    """The same class made by ``@dataclass(frozen=True)`` and by ``@frozen``."""
    def make(decorate):  # type: ignore[no-untyped-def]
        return decorate(type("Sample", (), {"__module__": __name__, **body}))
    return make(dataclass(frozen=True)), make(frozen)


SHAPES = {
    "plain": {"__annotations__": {"a": "int", "b": "str"}, "b": "x"},
    "one field": {"__annotations__": {"a": "int"}},
    "no fields": {},
    "hidden and not compared": {
        "__annotations__": {"a": "int", "secret": "bytes", "note": "str", "tag": "int"},
        "secret": field(default=b"k", repr=False),
        "note": field(default="", compare=False),
        "tag": field(default=0, compare=False, hash=True)},
    "a list inside": {"__annotations__": {"a": "int", "items": "list[object]"},
                      "items": field(default_factory=list)},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_frozen_behaves_as_dataclasses_frozen(shape: str) -> None:
    old, new = _pair(SHAPES[shape])
    names = [f.name for f in dataclasses.fields(old)]
    assert names == [f.name for f in dataclasses.fields(new)]
    values = {"a": 3, "b": "y", "secret": b"s", "note": "n", "tag": 7}
    args = {name: values[name] for name in names if name in values}
    one, two = old(**args), new(**args)
    assert repr(one) == repr(two)
    if shape != "a list inside":  # a list does not hash, in either
        assert hash(one) == hash(two)
    assert (one == old(**args)) and (two == new(**args))
    assert two != one and one != two  # another class: NotImplemented both ways, then identity
    if "note" in names:  # a field that does not compare
        assert two == new(**{**args, "note": "other"}) and hash(two) == hash(
            new(**{**args, "note": "other"}))
        assert two != new(**{**args, "a": 4})
        assert hash(two) == hash((3, b"s", 7))  # a, secret (compares), tag (hash=True)
    for instance in (one, two):
        for name in [*names, "other"]:
            with pytest.raises(dataclasses.FrozenInstanceError) as raised:
                setattr(instance, name, 1)
            message = str(raised.value)
            with pytest.raises(dataclasses.FrozenInstanceError):
                delattr(instance, name)
        assert message == f"cannot assign to field {'other'!r}"
    if "a" in names:
        assert dataclasses.replace(two, a=9).a == 9
    assert copy.deepcopy(two) == two


def test_a_record_that_contains_itself_shows_dots_as_dataclasses_does() -> None:
    old, new = _pair(SHAPES["a list inside"])
    one, two = old(1), new(1)
    one.items.append(one)
    two.items.append(two)
    assert repr(two) == repr(one) == "Sample(a=1, items=[...])"


def test_a_plain_subclass_may_set_its_own_attributes_but_not_the_fields() -> None:
    old, new = _pair(SHAPES["plain"])
    for base in (old, new):
        sub = type("Sub", (base,), {})(1)
        sub.extra = 5
        assert sub.extra == 5
        del sub.extra
        with pytest.raises(dataclasses.FrozenInstanceError):
            sub.a = 2
        assert repr(sub) == "Sub(a=1, b='x')"


def test_what_a_class_writes_itself_is_kept_and_post_init_runs() -> None:
    @frozen
    class Shown:
        a: int
        doubled: int = field(init=False)

        def __post_init__(self) -> None:
            object.__setattr__(self, "doubled", self.a * 2)

        def __repr__(self) -> str:
            return f"<{self.a}>"

    assert repr(Shown(2)) == "<2>" and Shown(2).doubled == 4
    assert Shown(2) == Shown(2) and hash(Shown(2)) == hash((2, 4))


def test_frozen_classes_share_their_methods() -> None:
    """The point of ``@frozen``: one function for every class's ``__eq__``, ``__hash__``,
    ``__repr__``, ``__setattr__`` and ``__delattr__``, not code compiled for each (an idle
    agent keeps some fifty such classes: docs/scale.md, session 12)."""
    first, second = _pair(SHAPES["plain"])[1], _pair(SHAPES["one field"])[1]
    for name in ("__eq__", "__hash__", "__repr__", "__setattr__", "__delattr__"):
        assert vars(first)[name] is vars(second)[name], name
        assert vars(Listing)[name] is vars(first)[name], name  # the store's records too
    assert vars(first)["__init__"] is not vars(second)["__init__"]


def test_the_node_writes_no_frozen_dataclass_of_its_own() -> None:
    """Every frozen dataclass in node/ is ``@frozen``, so a new one does not bring back
    the per-class methods."""
    spelled = re.compile(r"^\s*@(?:dataclasses\.)?dataclass\((?=[^)]*frozen=True)", re.M)
    found = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "node").rglob("*.py"))
             if spelled.search(path.read_text(encoding="utf-8"))]
    assert found == []
