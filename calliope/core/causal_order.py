"""Which events a writer did not know about, and one order for a causal history."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from calliope.core.causal import Causal
from calliope.core.version_vector import Ordering, VersionVector

__all__ = ["causal_order", "causal_sort_key", "detect_concurrent"]

T = TypeVar("T", bound=Causal)


def detect_concurrent(version: VersionVector, values: Iterable[T]) -> list[T]:
    """The values concurrent with ``version``, in their input order.

    A value is concurrent when its version is neither in the causal past of
    ``version`` nor after it. For a freshly written event (whose version no
    one else can have seen yet) these are exactly the values not in its
    causal past: the updates its writer did not know about.
    """
    return [value for value in values if value.version.compare(version) is Ordering.CONCURRENT]


def causal_sort_key(value: Causal) -> tuple[int, str]:
    """A total order key that extends causality.

    If ``a.version < b.version`` then ``a.version.total < b.version.total``,
    so sorting by (total, replica id) never puts a value before its causal
    past; two distinct values never share a key, because along one replica's
    history the total strictly grows. Each replica's own log is already
    sorted by this key, so logs can be merged lazily (``heapq.merge``).
    """
    return (value.version.total, value.replica_id)


def causal_order(values: Iterable[T]) -> list[T]:
    """A deterministic linear extension of causality over ``values``.

    Duplicates (same dot) are dropped; the result depends only on the set of
    values, never on their input order, so every replica holding the same
    values lists them the same way.
    """
    unique: dict[tuple[int, str], T] = {}
    for value in values:
        unique.setdefault(causal_sort_key(value), value)
    return [unique[key] for key in sorted(unique)]
