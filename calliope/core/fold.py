"""The pure fold that turns a history of events into state."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["aggregate"]

E = TypeVar("E")
S = TypeVar("S")


def aggregate(events: Iterable[E], update_state: Callable[[S, E], S], init: S) -> S:
    """Fold ``events`` left to right: ``update_state(...update_state(init, e1)..., en)``.

    Streams its input (holds one event at a time). Because it is a left fold,
    folding a history in pieces, each piece starting from the state the
    previous one ended with, gives the same state as folding it whole — which
    is what makes snapshots sound.
    """
    state = init
    for event in events:
        state = update_state(state, event)
    return state
