"""MVRegister: a register that keeps every concurrently written value."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from calliope.core.crdt.protocol import Tagged
from calliope.core.envelope import Dot
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = ["MVRegister", "MVSet"]


@attrs.frozen
class MVSet:
    """Write ``value``, replacing the values the writer had seen."""

    value: Any


@attrs.frozen(kw_only=True)
class MVRegister:
    """A multi-value register: ``.set(value)``; ``.value`` is a frozenset.

    ``MVRegister()`` holds ``frozenset()``. Concurrent semantics: a write
    replaces the values its replica had seen; values written concurrently
    are all kept, and ``.value`` is the frozenset of them (values must be
    hashable) until a later write, which has seen them all, replaces them.
    Overwritten values are dropped at once (no tombstones); at stability the
    remaining values lose their dots.

    >>> from calliope.core.crdt import MVRegister, Tagged
    >>> a = b = MVRegister()
    >>> red = Tagged(replica_id="a", version={"a": 1}, op=a.set("red"))
    >>> blue = Tagged(replica_id="b", version={"b": 1}, op=b.set("blue"))
    >>> a = a.effect(red).effect(blue)
    >>> b = b.effect(blue).effect(red)
    >>> a == b, sorted(a.value)
    (True, ['blue', 'red'])
    >>> green = Tagged(replica_id="b", version={"a": 1, "b": 2}, op=b.set("green"))
    >>> a.effect(green).value
    frozenset({'green'})
    """

    op_types: ClassVar[tuple[type, ...]] = (MVSet,)

    # (dot, value) of the concurrent writes not yet causally stable, sorted by dot
    entries: tuple[tuple[Dot, Any], ...] = ()
    # values of causally stable writes (each later write replaces them all)
    stable: frozenset[Any] = frozenset()

    @property
    def value(self) -> frozenset[Any]:
        return self.stable.union(value for _, value in self.entries)

    def set(self, value: Any) -> MVSet:
        """The operation writing ``value`` (hashable)."""
        try:
            hash(value)
        except TypeError:
            raise InvalidOperationError(
                f"MVRegister values must be hashable (they form a frozenset), got {value!r}"
            ) from None
        return MVSet(value)

    def effect(self, tagged: Tagged[Any], /) -> MVRegister:
        op = tagged.op
        if not isinstance(op, MVSet):
            raise InvalidOperationError(f"an MVRegister cannot apply {op!r}")
        version = tagged.version
        kept = [entry for entry in self.entries if entry[0][1] > version[entry[0][0]]]
        kept.append((tagged.dot, op.value))
        kept.sort(key=lambda entry: entry[0])
        return MVRegister(entries=tuple(kept))

    def compact(self, stable: VersionVector, /) -> MVRegister:
        settled = [entry for entry in self.entries if entry[0][1] <= stable[entry[0][0]]]
        if not settled:
            return self
        return MVRegister(
            entries=tuple(entry for entry in self.entries if entry[0][1] > stable[entry[0][0]]),
            stable=self.stable.union(value for _, value in settled),
        )
