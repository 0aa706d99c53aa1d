"""Version vectors: the causal clock of every event and operation.

A :class:`VersionVector` maps replica ids to counters; a missing entry counts
as zero and is never stored, so two vectors are equal exactly when they agree
on every replica. The vectors form a lattice under the pointwise order:
``merge`` is the join (pointwise max), ``meet`` the meet (pointwise min).
``compare`` classifies a pair as BEFORE, AFTER, EQUAL or CONCURRENT.

Vectors are immutable and hashable; every operation returns a new vector and
costs O(number of replicas).
"""

from __future__ import annotations

import enum
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any

import attrs

from calliope.errors import InvalidArgumentError

__all__ = ["Ordering", "VersionVector", "stable_vector"]


_set = object.__setattr__


class Ordering(enum.Enum):
    """How two version vectors relate in the causal partial order."""

    BEFORE = "before"
    AFTER = "after"
    EQUAL = "equal"
    CONCURRENT = "concurrent"


def _validated(entries: Mapping[str, int]) -> dict[str, int]:
    clean: dict[str, int] = {}
    for replica, counter in entries.items():
        if not isinstance(replica, str) or not replica:
            raise InvalidArgumentError(
                f"version vector replica ids must be non-empty strings, got {replica!r}"
            )
        if not isinstance(counter, int) or isinstance(counter, bool) or counter < 0:
            raise InvalidArgumentError(
                f"version vector counters must be non-negative ints, got {counter!r} "
                f"for replica {replica!r}"
            )
        if counter:
            clean[replica] = counter
    return clean


@attrs.frozen(eq=False, repr=False, init=False)
class VersionVector(Mapping[str, int]):
    """An immutable map replica id -> counter; absent replicas count as 0.

    ``a <= b`` holds when every counter of ``a`` is at most the one in ``b``
    (``a`` is in the causal past of ``b``, or equal to it). Hashable; equal
    vectors hash equally whatever zero entries they were built with.
    """

    _entries: dict[str, int]
    _total: int
    _hash: int | None

    def __init__(self, entries: Mapping[str, int] | None = None) -> None:
        clean = _validated(entries) if entries else {}
        self.__attrs_init__(clean, sum(clean.values()), None)

    @classmethod
    def unchecked(cls, clean: dict[str, int], total: int | None = None) -> VersionVector:
        """Build from a dict known to hold only non-empty string keys and
        positive int counters, taking ownership of it (no copy, no checks).

        For hot paths only: merge, delivery, and vectors read back from a
        checksummed journal that Calliope itself wrote. The hash is computed
        on first use.
        """
        vector = object.__new__(cls)
        _set(vector, "_entries", clean)
        _set(vector, "_total", sum(clean.values()) if total is None else total)
        _set(vector, "_hash", None)
        return vector

    # Mapping protocol: missing replicas read as 0.
    def __getitem__(self, replica: str) -> int:
        return self._entries.get(replica, 0)

    def get(self, replica: str, default: Any = 0) -> Any:
        return self._entries.get(replica, default)

    def __contains__(self, replica: object) -> bool:
        return replica in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> ItemsView[str, int]:
        return self._entries.items()

    def keys(self) -> KeysView[str]:
        return self._entries.keys()

    def values(self) -> ValuesView[int]:
        return self._entries.values()

    @property
    def total(self) -> int:
        """The sum of all counters: strictly grows along every causal chain."""
        return self._total

    def increment(self, replica: str, by: int = 1) -> VersionVector:
        """This vector with ``replica``'s counter raised by ``by`` (default 1)."""
        if not isinstance(replica, str) or not replica:
            raise InvalidArgumentError(f"replica id must be a non-empty string, got {replica!r}")
        if not isinstance(by, int) or isinstance(by, bool) or by < 1:
            raise InvalidArgumentError(f"increment must be an int of at least 1, got {by!r}")
        entries = dict(self._entries)
        entries[replica] = entries.get(replica, 0) + by
        return VersionVector.unchecked(entries, self._total + by)

    def merge(self, other: VersionVector) -> VersionVector:
        """The least upper bound: pointwise maximum."""
        if len(other._entries) > len(self._entries):
            small, large = self._entries, other._entries
        else:
            small, large = other._entries, self._entries
        entries = dict(large)
        changed = False
        for replica, counter in small.items():
            if counter > entries.get(replica, 0):
                entries[replica] = counter
                changed = True
        if not changed:
            return other if large is other._entries else self
        return VersionVector.unchecked(entries)

    def meet(self, other: VersionVector) -> VersionVector:
        """The greatest lower bound: pointwise minimum (absent counts as 0)."""
        mine, theirs = self._entries, other._entries
        entries = {
            replica: min(counter, theirs[replica])
            for replica, counter in mine.items()
            if replica in theirs
        }
        return VersionVector.unchecked(entries)

    def compare(self, other: VersionVector) -> Ordering:
        """BEFORE if self < other, AFTER if self > other, EQUAL, else CONCURRENT."""
        mine, theirs = self._entries, other._entries
        less = greater = False
        for replica, counter in mine.items():
            their_counter = theirs.get(replica, 0)
            if counter < their_counter:
                less = True
            elif counter > their_counter:
                greater = True
                if less:
                    return Ordering.CONCURRENT
        if not less:
            # Entries only the other vector has are all positive.
            for replica in theirs:
                if replica not in mine:
                    less = True
                    break
        if less:
            return Ordering.CONCURRENT if greater else Ordering.BEFORE
        return Ordering.AFTER if greater else Ordering.EQUAL

    def __le__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        if self._total > other._total:
            return False
        theirs = other._entries
        return all(counter <= theirs.get(replica, 0) for replica, counter in self._entries.items())

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return self._total < other._total and self <= other

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return other <= self

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return other < self

    def dominates(self, other: VersionVector) -> bool:
        """True when ``other`` is in this vector's causal past or equal to it."""
        return other <= self

    def concurrent_with(self, other: VersionVector) -> bool:
        """True when neither vector is in the other's causal past."""
        return self.compare(other) is Ordering.CONCURRENT

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return self._total == other._total and self._entries == other._entries

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        cached = self._hash
        if cached is None:
            cached = hash(frozenset(self._entries.items()))
            _set(self, "_hash", cached)
        return cached

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{replica}:{counter}" for replica, counter in sorted(self._entries.items())
        )
        return f"VersionVector({{{inner}}})"

    def to_dict(self) -> dict[str, int]:
        """The non-zero entries as a plain dict (a copy)."""
        return dict(self._entries)


EMPTY = VersionVector()


def stable_vector(vectors: Iterable[VersionVector]) -> VersionVector:
    """The pointwise minimum of ``vectors``: what every one of them has seen.

    Given the latest known version of every replica, this is the causally
    stable point: operations at or below it have been delivered everywhere.
    Raises :class:`~calliope.errors.InvalidArgumentError` for no vectors (the
    meet of nothing is undefined; a system with no known replica has no
    stable point).
    """
    iterator = iter(vectors)
    try:
        result = next(iterator)
    except StopIteration:
        raise InvalidArgumentError(
            "stable_vector needs at least one version vector (pass every known replica's version)"
        ) from None
    for vector in iterator:
        result = result.meet(vector)
    return result
