"""``@frozen``: a frozen dataclass whose comparison, hash, repr and refusal to change are
shared by every such class instead of generated for each.

``dataclasses`` writes, for every frozen class, the source of six methods (``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``) and compiles it:
each class holds its own code objects, about 9 KiB of a process's memory per class (Debian's
3.11, five fields). An idle agent imports some fifty such classes of ours and keeps them for
good (docs/scale.md, session 12). :func:`frozen` lets ``dataclasses`` make the class as
``@dataclass(frozen=True)`` does, then puts in place of the five methods that do not depend
on the class's signature one function each, which read the class's field names from a small
:class:`_Shape` kept on it. ``__init__`` (defaults, ``__post_init__``, the signature) stays
the generated one.

The shared methods behave as the generated ones: ``==`` between instances of the same class
compares the fields that compare, in order, and is ``NotImplemented`` otherwise; the hash is
that of the same tuple (or of the fields marked ``hash=True``); the repr is
``Name(field=value, ...)`` over the fields that show, ``...`` where an instance contains
itself; assigning or deleting a field raises :class:`dataclasses.FrozenInstanceError`, and
on an instance of a plain (non-dataclass) subclass, any other attribute may be set. A
method the class defines itself is kept, as ``dataclasses`` keeps it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")

#: The methods replaced (when ``dataclasses`` generated them, not when the class wrote them).
SHARED = ("__eq__", "__hash__", "__repr__", "__setattr__", "__delattr__")


class _Shape:
    """What the shared methods need of one ``@frozen`` class: itself and its field names."""

    __slots__ = ("compare", "fields", "hashed", "owner", "shown")
    owner: type[Any]
    compare: Callable[[object], tuple[Any, ...]]
    hashed: Callable[[object], tuple[Any, ...]]
    fields: tuple[str, ...]
    shown: tuple[str, ...]

    def __init__(self, cls: type) -> None:
        fields = dataclasses.fields(cls)
        self.owner = cls
        self.fields = tuple(f.name for f in fields)
        self.compare = _getter(tuple(f.name for f in fields if f.compare))
        self.hashed = _getter(tuple(f.name for f in fields
                                    if (f.compare if f.hash is None else f.hash)))
        self.shown = tuple(f.name for f in fields if f.repr)


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[Any, ...]]:
    """A function giving an object's ``names`` attributes as a tuple (one name too)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda _obj: ()


def _shape(obj: object) -> _Shape:
    shape: _Shape = obj.__class__.__frozen_shape__  # type: ignore[attr-defined]
    return shape


def _eq(self: object, other: object) -> bool:
    cls = self.__class__
    if other.__class__ is cls:
        compare = cls.__frozen_shape__.compare  # type: ignore[attr-defined]
        return compare(self) == compare(other)
    return NotImplemented


def _hash(self: object) -> int:
    return hash(self.__class__.__frozen_shape__.hashed(self))  # type: ignore[attr-defined]


#: The instances being shown, with their thread: as dataclasses' ``_recursive_repr``.
_showing: set[tuple[int, int]] = set()


def _repr(self: object) -> str:
    key = (id(self), threading.get_ident())
    if key in _showing:
        return "..."
    _showing.add(key)
    try:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _shape(self).shown)
        return f"{self.__class__.__qualname__}({shown})"
    finally:
        _showing.discard(key)


def _setattr(self: object, name: str, value: object) -> None:
    shape = _shape(self)
    if type(self) is shape.owner or name in shape.fields:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    super(shape.owner, self).__setattr__(name, value)


def _delattr(self: object, name: str) -> None:
    shape = _shape(self)
    if type(self) is shape.owner or name in shape.fields:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
    super(shape.owner, self).__delattr__(name)


_METHODS: dict[str, Callable[..., Any]] = {
    "__eq__": _eq, "__hash__": _hash, "__repr__": _repr,
    "__setattr__": _setattr, "__delattr__": _delattr}


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(cls: type[_T]) -> type[_T]:
    """``cls`` as ``@dataclass(frozen=True)`` makes it, with the shared methods in place of
    the generated ``__eq__``, ``__hash__``, ``__repr__``, ``__setattr__`` and
    ``__delattr__`` (the module's docstring says why and how they match)."""
    own = set(vars(cls))
    made = dataclasses.dataclass(frozen=True)(cls)
    made.__frozen_shape__ = _Shape(made)  # type: ignore[attr-defined]
    for name in SHARED:
        generated = vars(made).get(name)
        if name not in own and callable(generated):
            setattr(made, name, _METHODS[name])  # the class itself takes assignment
    return made
