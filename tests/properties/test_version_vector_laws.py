"""Lattice laws of version vectors, checked against a pointwise reference."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from calliope import Ordering, VersionVector, stable_vector
from calliope.testing.histories import causal_histories

REPLICAS = ["a", "b", "c", "d"]

raw_vectors = st.dictionaries(st.sampled_from(REPLICAS), st.integers(min_value=0, max_value=4))
vectors = raw_vectors.map(VersionVector)
# Versions that arise in real histories are related far more often than random ones.
history_vectors = causal_histories(max_events=12, min_events=1).flatmap(
    lambda history: st.sampled_from([envelope.version for envelope in history])
)
any_vectors = st.one_of(vectors, history_vectors)


def pointwise_le(a: VersionVector, b: VersionVector) -> bool:
    return all(a[key] <= b[key] for key in set(a) | set(b))


@given(raw_vectors)
def test_zero_entries_do_not_matter(raw: dict[str, int]) -> None:
    with_zeros = VersionVector({**raw, "zzz": 0})
    without = VersionVector({k: v for k, v in raw.items() if v})
    assert with_zeros == without
    assert hash(with_zeros) == hash(without)
    assert "zzz" not in with_zeros
    assert with_zeros["zzz"] == 0


@given(any_vectors, any_vectors)
def test_le_is_the_pointwise_order(a: VersionVector, b: VersionVector) -> None:
    assert (a <= b) == pointwise_le(a, b)
    assert (a < b) == (pointwise_le(a, b) and a != b)
    assert a.dominates(b) == pointwise_le(b, a)


@given(any_vectors, any_vectors)
def test_compare_agrees_with_le(a: VersionVector, b: VersionVector) -> None:
    expected = {
        (True, True): Ordering.EQUAL,
        (True, False): Ordering.BEFORE,
        (False, True): Ordering.AFTER,
        (False, False): Ordering.CONCURRENT,
    }[(pointwise_le(a, b), pointwise_le(b, a))]
    assert a.compare(b) is expected
    assert a.concurrent_with(b) == (expected is Ordering.CONCURRENT)
    flipped = {Ordering.BEFORE: Ordering.AFTER, Ordering.AFTER: Ordering.BEFORE}
    assert b.compare(a) is flipped.get(expected, expected)


@given(any_vectors, any_vectors, any_vectors)
def test_le_is_a_partial_order(a: VersionVector, b: VersionVector, c: VersionVector) -> None:
    assert a <= a
    if a <= b and b <= a:
        assert a == b
    if a <= b and b <= c:
        assert a <= c


@given(any_vectors, any_vectors, any_vectors)
def test_merge_is_a_semilattice_join(a: VersionVector, b: VersionVector, c: VersionVector) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a


def _minus_one(vector: VersionVector, key: str) -> VersionVector:
    entries = vector.to_dict()
    entries[key] -= 1
    return VersionVector(entries)


@given(any_vectors, any_vectors)
def test_merge_is_the_least_upper_bound(a: VersionVector, b: VersionVector) -> None:
    join = a.merge(b)
    assert a <= join and b <= join
    # Least: lowering any entry stops it from being an upper bound.
    for key in join:
        lower = _minus_one(join, key)
        assert not (a <= lower and b <= lower)


@given(any_vectors, any_vectors)
def test_meet_is_the_greatest_lower_bound(a: VersionVector, b: VersionVector) -> None:
    meet = a.meet(b)
    assert meet <= a and meet <= b
    assert meet == b.meet(a)
    # Greatest: raising any entry stops it from being a lower bound.
    for key in set(a) | set(b):
        higher = meet.increment(key)
        assert not (higher <= a and higher <= b)


@given(st.lists(any_vectors, min_size=1, max_size=5))
def test_stable_vector_is_below_every_vector(vs: list[VersionVector]) -> None:
    stable = stable_vector(vs)
    assert all(stable <= v for v in vs)
    for key in {k for v in vs for k in v}:
        assert stable[key] == min(v[key] for v in vs)


@given(any_vectors, st.sampled_from(REPLICAS))
def test_increment_moves_strictly_after(a: VersionVector, replica: str) -> None:
    later = a.increment(replica)
    assert a.compare(later) is Ordering.BEFORE
    assert later[replica] == a[replica] + 1
    assert later.total == a.total + 1
