"""LWWRegister: a last-writer-wins register with caller-supplied timestamps."""

from __future__ import annotations

import datetime
import math
from typing import Any, ClassVar

import attrs

from calliope.core.crdt.protocol import Tagged
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidOperationError

__all__ = ["LWWRegister", "LWWSet", "Timestamp"]

Timestamp = int | float | datetime.datetime
"""A write's timestamp: a number, or a timezone-aware datetime."""


def _key(timestamp: Timestamp) -> tuple[int, Any]:
    # Numbers order among themselves, datetimes among themselves; a datetime
    # sorts after every number, so even mixed kinds order deterministically.
    if isinstance(timestamp, datetime.datetime):
        return (1, timestamp)
    return (0, timestamp)


def _checked(timestamp: object) -> Timestamp:
    if isinstance(timestamp, datetime.datetime):
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise InvalidOperationError(
                f"LWWRegister.set needs a timezone-aware datetime, got naive {timestamp!r}; "
                f"give it a tzinfo (for example datetime.UTC), as the clock's now(UTC) does"
            )
        return timestamp
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise InvalidOperationError(
            f"LWWRegister.set takes a number or a timezone-aware datetime as timestamp, "
            f"got {timestamp!r}"
        )
    if isinstance(timestamp, float) and not math.isfinite(timestamp):
        raise InvalidOperationError(f"LWWRegister timestamps must be finite, got {timestamp!r}")
    return timestamp


@attrs.frozen
class LWWSet:
    """Write ``value`` at ``timestamp``."""

    value: Any
    timestamp: Timestamp


@attrs.frozen(kw_only=True)
class LWWRegister:
    """A last-writer-wins register: ``.set(value, timestamp)``; ``LWWRegister()`` holds None.

    Concurrent semantics: the write with the greatest ``timestamp`` wins;
    equal timestamps are broken by the writers' replica ids (the greater id
    wins), so every replica picks the same winner whatever the delivery order.
    Two writes of one replica with equal timestamps: the later one wins.
    The timestamp is passed in (the core reads no clock): a number (for
    instance a hybrid logical clock) or a timezone-aware datetime; keep one
    kind per register (a datetime beats every number). A writer whose clock
    runs behind loses to older writes of others: that is what LWW means.
    Only the winning value is kept, so there is nothing to compact.

    >>> from calliope.core.crdt import LWWRegister, Tagged
    >>> a = b = LWWRegister()
    >>> early = Tagged(replica_id="a", version={"a": 1}, op=a.set("early", timestamp=10))
    >>> late = Tagged(replica_id="b", version={"b": 1}, op=b.set("late", timestamp=20))
    >>> a = a.effect(late).effect(early)
    >>> b = b.effect(early).effect(late)
    >>> a == b, a.value
    (True, 'late')
    """

    op_types: ClassVar[tuple[type, ...]] = (LWWSet,)

    value: Any = None
    timestamp: Timestamp | None = None
    writer: str | None = None

    def set(self, value: Any, timestamp: Timestamp) -> LWWSet:
        """The operation writing ``value`` at ``timestamp``."""
        return LWWSet(value, _checked(timestamp))

    def effect(self, tagged: Tagged[Any], /) -> LWWRegister:
        op = tagged.op
        if not isinstance(op, LWWSet):
            raise InvalidOperationError(f"an LWWRegister cannot apply {op!r}")
        # An equal key can only come from the same replica, delivered in causal
        # order: the later write wins.
        if (
            self.timestamp is not None
            and self.writer is not None
            and (_key(op.timestamp), tagged.replica_id) < (_key(self.timestamp), self.writer)
        ):
            return self
        return LWWRegister(value=op.value, timestamp=op.timestamp, writer=tagged.replica_id)

    def compact(self, stable: VersionVector, /) -> LWWRegister:
        return self
