"""PNCounter: a counter that goes up and down."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import immutables

from calliope.core.crdt.gcounter import Increment, checked_amount
from calliope.core.crdt.protocol import Tagged
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = ["Decrement", "PNCounter"]


@attrs.frozen
class Decrement:
    """Subtract ``n`` (>= 0) at the writing replica."""

    n: int = 1


@attrs.frozen(kw_only=True)
class PNCounter:
    """A counter: ``.increment(n=1)``, ``.decrement(n=1)``; ``.value`` may go negative.

    Concurrent semantics: every increment and decrement counts, whatever the
    order; the state keeps per-replica totals of each, and no tombstones.

    >>> from calliope.core.crdt import PNCounter, Tagged
    >>> a = b = PNCounter()
    >>> up = Tagged(replica_id="a", version={"a": 1}, op=a.increment(5))
    >>> down = Tagged(replica_id="b", version={"b": 1}, op=b.decrement(2))
    >>> a = a.effect(up).effect(down)
    >>> b = b.effect(down).effect(up)
    >>> a == b, a.value
    (True, 3)
    """

    op_types: ClassVar[tuple[type, ...]] = (Increment, Decrement)

    increments: immutables.Map[str, int] = attrs.field(factory=immutables.Map)
    decrements: immutables.Map[str, int] = attrs.field(factory=immutables.Map)

    @property
    def value(self) -> int:
        return sum(self.increments.values()) - sum(self.decrements.values())

    def increment(self, n: int = 1) -> Increment:
        """The operation adding ``n`` (a non-negative int)."""
        return Increment(checked_amount(n, "PNCounter.increment"))

    def decrement(self, n: int = 1) -> Decrement:
        """The operation subtracting ``n`` (a non-negative int)."""
        if isinstance(n, int) and not isinstance(n, bool) and n < 0:
            raise InvalidOperationError(
                f"PNCounter.decrement takes a non-negative int, got {n!r}; "
                f"use .increment({-n}) to go up"
            )
        return Decrement(checked_amount(n, "PNCounter.decrement"))

    def effect(self, tagged: Tagged[Any], /) -> PNCounter:
        op = tagged.op
        replica = tagged.replica_id
        if isinstance(op, Increment):
            if not op.n:
                return self
            counts = self.increments
            return attrs.evolve(self, increments=counts.set(replica, counts.get(replica, 0) + op.n))
        if isinstance(op, Decrement):
            if not op.n:
                return self
            counts = self.decrements
            return attrs.evolve(self, decrements=counts.set(replica, counts.get(replica, 0) + op.n))
        raise InvalidOperationError(f"a PNCounter cannot apply {op!r}")

    def compact(self, stable: VersionVector, /) -> PNCounter:
        return self
