"""GCounter: a grow-only counter."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import immutables

from calliope.core.crdt.protocol import Tagged
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = ["GCounter", "Increment", "checked_amount"]


def checked_amount(n: object, what: str) -> int:
    """``n`` if it is a non-negative int, else an InvalidOperationError saying so."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidOperationError(
            f"{what} takes a non-negative int, got {n!r}"
            + ("; use a PNCounter and .decrement() to go down" if isinstance(n, int) else "")
        )
    return n


@attrs.frozen
class Increment:
    """Add ``n`` (>= 0) at the writing replica."""

    n: int = 1


@attrs.frozen(kw_only=True)
class GCounter:
    """A counter that only goes up: ``.increment(n=1)``; ``.value`` is the total.

    Concurrent semantics: increments commute, so concurrent increments all
    count. The state keeps one total per writing replica (``counts``); the
    op-based counter has no tombstones, so compaction changes nothing.

    Two replicas increment concurrently; each delivers both operations, in
    its own order, and both count 3:

    >>> from calliope.core.crdt import GCounter, Tagged
    >>> a = b = GCounter()
    >>> from_a = Tagged(replica_id="a", version={"a": 1}, op=a.increment())
    >>> from_b = Tagged(replica_id="b", version={"b": 1}, op=b.increment(2))
    >>> a = a.effect(from_a).effect(from_b)
    >>> b = b.effect(from_b).effect(from_a)
    >>> a == b, a.value, sorted(b.counts.items())
    (True, 3, [('a', 1), ('b', 2)])
    """

    op_types: ClassVar[tuple[type, ...]] = (Increment,)

    counts: immutables.Map[str, int] = attrs.field(factory=immutables.Map)

    @property
    def value(self) -> int:
        return sum(self.counts.values())

    def increment(self, n: int = 1) -> Increment:
        """The operation adding ``n`` (a non-negative int)."""
        return Increment(checked_amount(n, "GCounter.increment"))

    def effect(self, tagged: Tagged[Any], /) -> GCounter:
        op = tagged.op
        if not isinstance(op, Increment):
            raise InvalidOperationError(f"a GCounter cannot apply {op!r}")
        if not op.n:
            return self
        replica = tagged.replica_id
        return GCounter(counts=self.counts.set(replica, self.counts.get(replica, 0) + op.n))

    def compact(self, stable: VersionVector, /) -> GCounter:
        return self
