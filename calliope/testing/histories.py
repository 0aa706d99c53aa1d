"""Hypothesis strategies for realistic causal histories.

A history is what several replicas produce when they emit events, and now
and then learn what another replica has seen before emitting again. Each
envelope's version counts itself, so the list comes out in a valid causal
order (generation order); tests shuffle and duplicate it to model a network.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TypeVar

import attrs
from hypothesis import strategies as st

from calliope.core.envelope import Envelope
from calliope.core.version_vector import VersionVector

E = TypeVar("E")

__all__ = [
    "EPOCH",
    "Emit",
    "Sync",
    "arrival_orders",
    "causal_histories",
    "envelope",
    "replay_actions",
]

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@attrs.frozen
class Emit:
    """Replica ``replica`` writes one event."""

    replica: int


@attrs.frozen
class Sync:
    """Replica ``receiver`` learns everything replica ``sender`` has seen."""

    receiver: int
    sender: int


Action = Emit | Sync


def envelope(
    replica_id: str,
    event: E,
    version: Mapping[str, int] | VersionVector,
    *,
    stream_id: str = "stream",
    timestamp: datetime.datetime = EPOCH,
) -> Envelope[E]:
    """An envelope written by ``replica_id`` at ``version`` (which must count
    the event itself at ``replica_id``); its sequence is that count."""
    vector = version if isinstance(version, VersionVector) else VersionVector(version)
    return Envelope(
        stream_id=stream_id,
        replica_id=replica_id,
        sequence=vector[replica_id],
        version=vector,
        timestamp=timestamp,
        event=event,
    )


def replay_actions(
    replica_ids: list[str], actions: list[Action], stream_id: str = "stream"
) -> list[Envelope[int]]:
    """Run ``actions`` over replicas named ``replica_ids``; return the envelopes emitted.

    Envelope ``i`` carries event ``i`` and timestamp ``EPOCH + i`` seconds.
    """
    versions = [VersionVector() for _ in replica_ids]
    envelopes: list[Envelope[int]] = []
    for action in actions:
        if isinstance(action, Emit):
            replica = replica_ids[action.replica]
            version = versions[action.replica].increment(replica)
            versions[action.replica] = version
            moment = EPOCH + datetime.timedelta(seconds=len(envelopes))
            envelopes.append(
                envelope(replica, len(envelopes), version, stream_id=stream_id, timestamp=moment)
            )
        else:
            versions[action.receiver] = versions[action.receiver].merge(versions[action.sender])
    return envelopes


@st.composite
def causal_histories(
    draw: st.DrawFn, *, max_replicas: int = 4, max_events: int = 30, min_events: int = 0
) -> list[Envelope[int]]:
    """A causal history from 1..max_replicas replicas, in generation order.

    Before each emitted event, a few replicas may learn what another has
    seen, so histories mix long concurrent runs with causal chains.
    """
    count = draw(st.integers(min_value=1, max_value=max_replicas))
    replica_ids = [f"r{index}" for index in range(count)]
    index = st.integers(min_value=0, max_value=count - 1)
    events = draw(st.integers(min_value=min_events, max_value=max_events))
    actions: list[Action] = []
    for _ in range(events):
        syncs = draw(st.lists(st.builds(Sync, index, index), max_size=2))
        actions.extend(syncs)
        actions.append(Emit(draw(index)))
    return replay_actions(replica_ids, actions)


@st.composite
def arrival_orders(draw: st.DrawFn, envelopes: list[Envelope[int]]) -> list[Envelope[int]]:
    """``envelopes`` shuffled, with some of them delivered more than once."""
    duplicates = (
        draw(st.lists(st.sampled_from(envelopes), max_size=len(envelopes))) if envelopes else []
    )
    return draw(st.permutations([*envelopes, *duplicates]))
