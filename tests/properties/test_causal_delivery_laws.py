"""Causal delivery: any arrival order, with duplicates, delivers each once, causally."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from calliope import CausalBuffer, Envelope, VersionVector, receive
from calliope.testing.histories import arrival_orders, causal_histories

histories_with_arrivals = causal_histories(max_events=40).flatmap(
    lambda history: st.tuples(st.just(history), arrival_orders(history))
)


def deliver(
    arrivals: list[Envelope[int]],
) -> tuple[CausalBuffer[Envelope[int]], list[Envelope[int]]]:
    buffer: CausalBuffer[Envelope[int]] = CausalBuffer()
    delivered: list[Envelope[int]] = []
    for envelope in arrivals:
        buffer, released = receive(buffer, envelope)
        delivered.extend(released)
    return buffer, delivered


@given(histories_with_arrivals)
def test_every_envelope_is_delivered_exactly_once(
    case: tuple[list[Envelope[int]], list[Envelope[int]]],
) -> None:
    history, arrivals = case
    buffer, delivered = deliver(arrivals)
    assert sorted(e.event for e in delivered) == sorted(e.event for e in history)
    assert buffer.pending == 0
    assert buffer.pending_values() == []
    expected = VersionVector()
    for envelope in history:
        expected = expected.merge(envelope.version)
    assert buffer.delivered == expected


@given(histories_with_arrivals, st.data())
def test_nothing_is_delivered_before_its_causal_past(
    case: tuple[list[Envelope[int]], list[Envelope[int]]], data: st.DataObject
) -> None:
    _, arrivals = case
    # Any prefix of the arrivals: what has been delivered is causally closed
    # and in causal order; everything else is pending or not yet arrived.
    cut = data.draw(st.integers(min_value=0, max_value=len(arrivals)))
    buffer, delivered = deliver(arrivals[:cut])
    for position, envelope in enumerate(delivered):
        for earlier in delivered[position + 1 :]:
            assert not (earlier.version < envelope.version), (
                f"{earlier} was delivered after {envelope}, which it precedes"
            )
    arrived = {e.event: e for e in arrivals[:cut]}
    delivered_events = {e.event for e in delivered}
    for envelope in arrived.values():
        past = [e for e in arrived.values() if e.version < envelope.version]
        if envelope.event in delivered_events:
            assert all(e.event in delivered_events for e in past)
    assert buffer.pending == len(arrived) - len(delivered_events)
    assert {e.event for e in buffer.pending_values()} == set(arrived) - delivered_events


@given(histories_with_arrivals)
def test_delivery_from_a_resumed_buffer_skips_what_was_delivered(
    case: tuple[list[Envelope[int]], list[Envelope[int]]],
) -> None:
    history, arrivals = case
    half = history[: len(history) // 2]
    known = VersionVector()
    for envelope in half:
        known = known.merge(envelope.version)
    # A causally closed prefix was delivered before (e.g. into a snapshot).
    closed = {e.event for e in history if e.version <= known}
    buffer: CausalBuffer[Envelope[int]] = CausalBuffer(delivered=known)
    delivered: list[Envelope[int]] = []
    for envelope in arrivals:
        buffer, released = receive(buffer, envelope)
        delivered.extend(released)
    assert sorted(e.event for e in delivered) == sorted(
        e.event for e in history if e.event not in closed
    )
