"""Examples of causal delivery between two replicas."""

from __future__ import annotations

import pytest

import calliope
from calliope import (
    CausalBuffer,
    Envelope,
    VersionVector,
    causal_order,
    detect_concurrent,
    receive,
    receive_all,
)
from calliope.testing.histories import envelope


def env(replica: str, event: str, **version: int) -> Envelope[str]:
    return envelope(replica, event, version, stream_id="s")


def test_out_of_order_arrival_is_buffered_then_released_in_order() -> None:
    a1 = env("a", "a1", a=1)
    a2 = env("a", "a2", a=2)
    b1 = env("b", "b1", a=2, b=1)  # b saw a1 and a2
    buffer: CausalBuffer[Envelope[str]] = CausalBuffer()
    buffer, out = receive(buffer, b1)
    assert out == [] and buffer.pending == 1
    buffer, out = receive(buffer, a2)
    assert out == [] and buffer.pending == 2
    buffer, out = receive(buffer, a1)
    assert [e.event for e in out] == ["a1", "a2", "b1"]
    assert buffer.pending == 0
    assert buffer.delivered == VersionVector({"a": 2, "b": 1})


def test_duplicates_are_dropped() -> None:
    a1 = env("a", "a1", a=1)
    a2 = env("a", "a2", a=2)
    buffer, out = receive_all(CausalBuffer(), [a2, a2, a1, a1, a2])
    assert [e.event for e in out] == ["a1", "a2"]
    assert buffer.pending == 0


def test_the_buffer_is_an_immutable_value() -> None:
    start: CausalBuffer[Envelope[str]] = CausalBuffer()
    after, _ = receive(start, env("a", "a2", a=2))
    assert start.pending == 0 and after.pending == 1
    again, out = receive(start, env("a", "a1", a=1))
    assert [e.event for e in out] == ["a1"] and again.pending == 0


def test_an_envelope_that_does_not_count_itself_is_rejected() -> None:
    with pytest.raises(calliope.InvalidEnvelopeError, match="must be at least 1"):
        receive(CausalBuffer(), env("a", "bad", b=1))


def test_detect_concurrent_and_causal_order_example() -> None:
    a1 = env("a", "a1", a=1)
    b1 = env("b", "b1", b=1)
    b2 = env("b", "b2", a=1, b=2)
    assert detect_concurrent(a1.version, [a1, b1, b2]) == [b1]
    assert [e.event for e in causal_order([b2, b1, a1, b1])] == ["a1", "b1", "b2"]
