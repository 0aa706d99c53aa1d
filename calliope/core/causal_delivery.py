"""Causal delivery: hold back what arrives early, release it in causal order.

Replicas exchange causally tagged values (events, CRDT operations) in any
order, with duplicates. A value with dot ``(r, n)`` and version ``V`` is
*deliverable* once this replica has delivered exactly ``n - 1`` values from
``r`` and, for every other replica ``k``, at least ``V[k]`` values from ``k``.
:func:`receive` takes the buffer and one arrival and returns the new buffer
and the values it releases, each at a moment it was deliverable, so the
released sequence never puts a value before anything in its causal past.

Cost, amortised O(1) in the number of pending values. A value that cannot be
delivered is *parked* under one dependency it lacks: the key ``(k, c)``,
meaning "wake me when the delivered count of ``k`` reaches ``c``". Because
each delivery raises one replica's count by exactly one, a delivery looks up
exactly one key, ``(r, n)``, and wakes only the values parked there. A woken
value is checked again (O(replicas)) and, if it still lacks something, parked
under another dependency, one that was unsatisfied before; it can therefore
be parked at most once per replica in its version. No arrival ever scans
the pending set. The parking map is a persistent hash array mapped trie
(``immutables.Map``), so the buffer is an immutable value and each update
costs O(log32 n), effectively constant, without copying.

Duplicates are recognised by dot: a value at or below the delivered count of
its replica, or already parked, is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

import attrs
import immutables

from calliope.core.causal import Causal
from calliope.core.envelope import Dot
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidEnvelopeError

__all__ = ["CausalBuffer", "receive", "receive_all"]

T = TypeVar("T", bound=Causal)

# Values parked under one key form a persistent singly linked list, so that
# parking is O(1) however many values wait on the same dependency.
_Chain = tuple[T, "_Chain[T] | None"]


def _walk(chain: _Chain[T] | None) -> list[T]:
    values: list[T] = []
    while chain is not None:
        values.append(chain[0])
        chain = chain[1]
    return values


@attrs.frozen(kw_only=True)
class CausalBuffer(Generic[T]):
    """What one replica has delivered, and what waits for its causal past.

    ``delivered`` is the version vector of everything released so far;
    ``pending`` counts the values held back. Start with ``CausalBuffer()``
    or, to resume after a snapshot, ``CausalBuffer(delivered=vector)``.
    """

    delivered: VersionVector = attrs.field(factory=VersionVector)
    _waiting: immutables.Map[Dot, _Chain[T]] = attrs.field(factory=immutables.Map, alias="waiting")
    _parked: immutables.Map[Dot, Dot] = attrs.field(factory=immutables.Map, alias="parked")

    @property
    def pending(self) -> int:
        """How many values are held back waiting for their causal past."""
        return len(self._parked)

    def pending_values(self) -> list[T]:
        """The held-back values (in no particular order)."""
        return [value for chain in self._waiting.values() for value in _walk(chain)]

    def missing(self) -> list[Dot]:
        """What the held-back values wait for that has not arrived: the
        (replica, sequence) of each awaited event that is not held back
        itself. O(pending)."""
        return [dot for dot in self._waiting if dot not in self._parked]


def _dot(value: Causal) -> Dot:
    replica = value.replica_id
    counter = value.version._entries.get(replica, 0)
    if counter < 1:
        raise InvalidEnvelopeError(
            f"a value from replica {replica!r} has version {value.version!r}, which does not "
            f"count the value itself; its own replica's entry must be at least 1"
        )
    return (replica, counter)


def _missing(delivered: Mapping[str, int], value: Causal, dot: Dot) -> Dot | None:
    """One dependency ``value`` lacks, as the key to park it under, or None."""
    replica, counter = dot
    known = delivered.get
    if known(replica, 0) < counter - 1:
        return (replica, counter - 1)
    for other, needed in value.version.items():
        if known(other, 0) < needed and other != replica:
            return (other, needed)
    return None


def receive(buffer: CausalBuffer[T], value: T) -> tuple[CausalBuffer[T], list[T]]:
    """Take one arriving value; return the new buffer and what is now deliverable.

    The returned list is in causal order: ``value`` itself (if deliverable)
    followed by any held-back values it unblocked, transitively. A duplicate
    of something delivered or pending returns the buffer unchanged and ``[]``.
    Raises :class:`~calliope.errors.InvalidEnvelopeError` if the value's
    version does not count the value itself.
    """
    dot = _dot(value)
    replica, counter = dot
    if counter <= buffer.delivered.get(replica, 0) or dot in buffer._parked:
        return buffer, []
    # The vector's own dict, read only: this is the hot path.
    need = _missing(buffer.delivered._entries, value, dot)
    if need is not None:
        waiting = buffer._waiting
        return (
            CausalBuffer(
                delivered=buffer.delivered,
                waiting=waiting.set(need, (value, waiting.get(need))),
                parked=buffer._parked.set(dot, need),
            ),
            [],
        )
    delivered = buffer.delivered.to_dict()
    if not buffer._waiting:
        # Fast path: nothing held back, so nothing to wake.
        delivered[replica] = counter
        return (
            CausalBuffer(
                delivered=VersionVector.unchecked(delivered),
                waiting=buffer._waiting,
                parked=buffer._parked,
            ),
            [value],
        )
    waiting_m = buffer._waiting.mutate()
    parked_m = buffer._parked.mutate()
    released: list[T] = []
    ready: list[tuple[T, Dot]] = [(value, dot)]
    while ready:
        item, item_dot = ready.pop()
        released.append(item)
        delivered[item_dot[0]] = item_dot[1]
        if item_dot in parked_m:
            del parked_m[item_dot]
        woken = waiting_m.pop(item_dot, None)
        for waiter in _walk(woken):
            waiter_dot = _dot(waiter)
            need = _missing(delivered, waiter, waiter_dot)
            if need is None:
                ready.append((waiter, waiter_dot))
            else:
                waiting_m[need] = (waiter, waiting_m.get(need))
                parked_m[waiter_dot] = need
    return (
        CausalBuffer(
            delivered=VersionVector.unchecked(delivered),
            waiting=waiting_m.finish(),
            parked=parked_m.finish(),
        ),
        released,
    )


def receive_all(buffer: CausalBuffer[T], values: Iterable[T]) -> tuple[CausalBuffer[T], list[T]]:
    """:func:`receive` each value in turn; return the final buffer and all releases."""
    released: list[T] = []
    for value in values:
        buffer, now = receive(buffer, value)
        released.extend(now)
    return buffer, released
