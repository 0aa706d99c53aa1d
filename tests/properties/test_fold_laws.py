"""The fold: in pieces equals whole; it is exactly a left fold."""

from __future__ import annotations

import functools

from hypothesis import given
from hypothesis import strategies as st

from calliope import aggregate


def update(state: tuple[int, ...], event: int) -> tuple[int, ...]:
    # Order-sensitive on purpose: a fold that reorders or drops events fails.
    return (*state[-5:], event * 31 + len(state))


@given(st.lists(st.integers()), st.data())
def test_folding_in_pieces_equals_folding_whole(events: list[int], data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=4)))
    state: tuple[int, ...] = ()
    start = 0
    for cut in [*cuts, len(events)]:
        state = aggregate(events[start:cut], update, state)
        start = cut
    empty: tuple[int, ...] = ()
    assert state == aggregate(events, update, empty)


@given(st.lists(st.integers()))
def test_aggregate_is_a_left_fold(events: list[int]) -> None:
    empty: tuple[int, ...] = ()
    assert aggregate(iter(events), update, empty) == functools.reduce(update, events, empty)
