"""ConcurrentVersions: the same events in any causal order give the same versions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from calliope import (
    CausalBuffer,
    ConcurrentVersions,
    Envelope,
    VersionVector,
    receive_all,
    stable_vector,
)
from calliope.testing.histories import arrival_orders, causal_histories, envelope

cases = causal_histories(max_events=25).flatmap(
    lambda history: st.tuples(st.just(history), arrival_orders(history))
)


def log(state: tuple[int, ...], event: int) -> tuple[int, ...]:
    return (*state, event)  # order-sensitive: the base of each event matters


def fold(envelopes: list[Envelope[int]]) -> ConcurrentVersions[tuple[int, ...], int]:
    empty: tuple[int, ...] = ()
    return ConcurrentVersions(empty, log).update_all(envelopes)


@given(cases)
def test_any_causal_delivery_order_gives_the_same_leaves(
    case: tuple[list[Envelope[int]], list[Envelope[int]]],
) -> None:
    history, arrivals = case
    _, delivered = receive_all(CausalBuffer(), arrivals)
    in_history_order = fold(history)
    in_arrival_order = fold(delivered)
    assert in_arrival_order.all == in_history_order.all
    assert in_arrival_order.conflict == in_history_order.conflict
    # Leaves are exactly the maximal events (nothing newer follows them).
    if history:
        maximal = {e.version for e in history if not any(e.version < o.version for o in history)}
        assert {leaf.version for leaf in in_history_order.all} == maximal


@given(cases, st.data())
def test_compaction_at_a_stable_point_changes_nothing_observable(
    case: tuple[list[Envelope[int]], list[Envelope[int]]], data: st.DataObject
) -> None:
    history, _ = case
    cut = data.draw(st.integers(0, len(history)))
    seen, rest = history[:cut], history[cut:]
    versions = fold(seen)
    # A stable point: folded here, and every later event dominates it.
    stable = stable_vector([versions.version, *(e.version for e in rest)])
    compacted = versions.compact(stable)
    assert compacted.all == versions.all
    assert compacted.update_all(rest).all == versions.update_all(rest).all


def stable_for(envelopes: list[Envelope[int]], folded: VersionVector) -> VersionVector:
    """A stable point for folding ``envelopes`` next: every one dominates it.
    It can be ahead of what is folded (an event not yet here, at the point)."""
    return stable_vector([e.version for e in envelopes]) if envelopes else folded


@given(cases, st.data())
def test_pruning_from_an_early_stable_point_changes_nothing_observable(
    case: tuple[list[Envelope[int]], list[Envelope[int]]], data: st.DataObject
) -> None:
    history, arrivals = case
    _, delivered = receive_all(CausalBuffer(), arrivals)
    cut = data.draw(st.integers(0, len(delivered)))
    reference = fold(delivered[:cut])
    versions = reference.compact(stable_for(delivered[cut:], reference.version))
    for index in range(cut, len(delivered)):
        # The stable point advances now and then; updates prune as they go.
        known = data.draw(st.booleans())
        stable = stable_for(delivered[index:], versions.version) if known else None
        versions = versions.update(delivered[index], stable=stable)
        reference = reference.update(delivered[index])
        assert versions.all == reference.all
        assert versions.kept <= reference.kept
    assert versions.all == fold(history).all
    # Once everything folded is stable, only the leaves are left.
    assert versions.compact(versions.version).kept == len(versions.leaves)


@given(st.integers(1, 300), st.integers(0, 5), st.data())
def test_one_writer_with_an_advancing_stable_point_keeps_a_bounded_number_of_states(
    count: int, lag: int, data: st.DataObject
) -> None:
    versions = fold([])
    for counter in range(1, count + 1):
        # Every replica has seen the event ``lag`` behind this one (or a later one).
        seen = counter - data.draw(st.integers(0, lag))
        stable = VersionVector({"w": seen}) if seen > 0 else None
        versions = versions.update(envelope("w", counter, {"w": counter}), stable=stable)
        assert versions.kept <= lag + 1
    assert versions.state == tuple(range(1, count + 1))
