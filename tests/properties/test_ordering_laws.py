"""causal_order is a deterministic linear extension; detect_concurrent is exact."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from calliope import Envelope, causal_order, detect_concurrent
from calliope.core.version_vector import VersionVector
from calliope.testing.histories import arrival_orders, causal_histories

histories = causal_histories(max_events=40)


@given(histories.flatmap(lambda h: st.tuples(st.just(h), arrival_orders(h))))
def test_causal_order_is_a_linear_extension_independent_of_input_order(
    case: tuple[list[Envelope[int]], list[Envelope[int]]],
) -> None:
    history, shuffled = case
    ordered = causal_order(shuffled)
    assert ordered == causal_order(history)
    assert sorted(e.event for e in ordered) == sorted(e.event for e in history)
    position = {e.event: i for i, e in enumerate(ordered)}
    for a in history:
        for b in history:
            if a.version < b.version:
                assert position[a.event] < position[b.event]


def pointwise_le(a: VersionVector, b: VersionVector) -> bool:
    return all(a[key] <= b[key] for key in set(a) | set(b))


@given(histories.flatmap(lambda h: st.tuples(st.just(h), st.sampled_from(h) if h else st.none())))
def test_detect_concurrent_returns_exactly_the_concurrent_envelopes(
    case: tuple[list[Envelope[int]], Envelope[int] | None],
) -> None:
    history, writer = case
    version = writer.version if writer is not None else VersionVector()
    found = detect_concurrent(version, history)
    expected = [
        e
        for e in history
        if not pointwise_le(e.version, version) and not pointwise_le(version, e.version)
    ]
    assert found == expected
