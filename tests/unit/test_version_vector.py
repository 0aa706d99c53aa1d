"""Examples of version-vector behaviour."""

from __future__ import annotations

import pytest

import calliope
from calliope import Ordering, VersionVector, stable_vector


def test_missing_entries_count_as_zero() -> None:
    vector = VersionVector({"a": 2})
    assert vector["b"] == 0
    assert vector.get("b") == 0
    assert len(vector) == 1


def test_compare_examples() -> None:
    a = VersionVector({"a": 1})
    ab = VersionVector({"a": 1, "b": 1})
    b = VersionVector({"b": 1})
    assert a.compare(ab) is Ordering.BEFORE
    assert ab.compare(a) is Ordering.AFTER
    assert a.compare(VersionVector({"a": 1, "b": 0})) is Ordering.EQUAL
    assert a.compare(b) is Ordering.CONCURRENT
    assert a.concurrent_with(b)
    assert ab.dominates(a) and not a.dominates(ab)


def test_merge_and_meet_examples() -> None:
    x = VersionVector({"a": 3, "b": 1})
    y = VersionVector({"b": 2, "c": 5})
    assert x.merge(y) == VersionVector({"a": 3, "b": 2, "c": 5})
    assert x.meet(y) == VersionVector({"b": 1})
    assert stable_vector([x, y, VersionVector({"b": 4})]) == VersionVector({"b": 1})


def test_repr_is_compact_and_sorted() -> None:
    assert repr(VersionVector({"b": 2, "a": 1})) == "VersionVector({a:1, b:2})"


def test_usable_as_dict_key() -> None:
    seen = {VersionVector({"a": 1}): "x"}
    assert seen[VersionVector({"a": 1, "z": 0})] == "x"


def test_immutable() -> None:
    vector = VersionVector({"a": 1})
    with pytest.raises(AttributeError):
        vector._entries = {}  # type: ignore[misc]
    assert vector.increment("a") == VersionVector({"a": 2})
    assert vector == VersionVector({"a": 1})


@pytest.mark.parametrize(
    "entries",
    [{"a": -1}, {"": 1}, {"a": 1.5}, {"a": True}],
)
def test_bad_entries_raise_a_clear_error(entries: dict[str, int]) -> None:
    with pytest.raises(calliope.InvalidArgumentError, match="version vector"):
        VersionVector(entries)


def test_bad_increment_raises() -> None:
    with pytest.raises(calliope.InvalidArgumentError, match="at least 1"):
        VersionVector().increment("a", by=0)
    with pytest.raises(calliope.CalliopeError, match="non-empty string"):
        VersionVector().increment("")


def test_stable_vector_of_nothing_says_what_to_pass() -> None:
    with pytest.raises(calliope.InvalidArgumentError, match="every known replica"):
        stable_vector([])
