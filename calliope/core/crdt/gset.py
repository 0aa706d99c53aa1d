"""GSet: a grow-only set."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import immutables

from calliope.core.crdt.protocol import Tagged, hashable
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = ["Add", "GSet"]


@attrs.frozen
class Add:
    """Add ``element`` to a set."""

    element: Any


@attrs.frozen(kw_only=True)
class GSet:
    """A set that only grows: ``.add(x)``; ``.value`` is a frozenset.

    Concurrent semantics: the union of everything added anywhere. Elements
    must be hashable plain data (str, int, float, bool, None) to be stored.

    >>> from calliope.core.crdt import GSet, Tagged
    >>> a = b = GSet()
    >>> x = Tagged(replica_id="a", version={"a": 1}, op=a.add("x"))
    >>> y = Tagged(replica_id="b", version={"b": 1}, op=b.add("y"))
    >>> a = a.effect(x).effect(y)
    >>> b = b.effect(y).effect(x)
    >>> a == b, sorted(a.value)
    (True, ['x', 'y'])
    """

    op_types: ClassVar[tuple[type, ...]] = (Add,)

    elements: immutables.Map[Any, bool] = attrs.field(factory=immutables.Map)

    @property
    def value(self) -> frozenset[Any]:
        return frozenset(self.elements.keys())

    def __contains__(self, element: object) -> bool:
        return element in self.elements

    def __len__(self) -> int:
        return len(self.elements)

    def add(self, element: Any) -> Add:
        """The operation adding ``element`` (hashable)."""
        return Add(hashable(element))

    def effect(self, tagged: Tagged[Any], /) -> GSet:
        op = tagged.op
        if not isinstance(op, Add):
            raise InvalidOperationError(f"a GSet cannot apply {op!r}")
        if op.element in self.elements:
            return self
        return GSet(elements=self.elements.set(op.element, True))

    def compact(self, stable: VersionVector, /) -> GSet:
        return self
