"""Replicated streams under random interleavings of several in-process replicas.

Each replica runs a random program of persists and queries as its own task
on the memory adapter; a port wrapper yields to the event loop a random
number of times around every storage call, so writes and reads of different
replicas interleave in every way Hypothesis can find.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from calliope import Envelope, PersistReply
from calliope.adapters.codec import Codec
from calliope.adapters.memory import MemoryEventLog, shared_memory_backend
from calliope.shell.ports import NewEvent, RecordBatch, Watcher
from calliope.shell.replicated_stream import ReplicatedEventStream


@attrs.frozen
class Note:
    text: str


class YieldingPort:
    """The memory port, yielding to other tasks a random number of times
    before and after each call."""

    def __init__(self, inner: MemoryEventLog, rng: random.Random) -> None:
        self._inner = inner
        self._rng = rng

    async def _pause(self) -> None:
        for _ in range(self._rng.randrange(4)):
            await asyncio.sleep(0)

    async def append_replica(
        self,
        stream_id: str,
        replica_id: str,
        events: Sequence[NewEvent],
        *,
        observed: Mapping[str, int],
        timestamp_us: int,
    ) -> RecordBatch | None:
        await self._pause()
        batch = await self._inner.append_replica(
            stream_id, replica_id, events, observed=observed, timestamp_us=timestamp_us
        )
        await self._pause()
        return batch

    async def read_new(self, stream_id: str, known: Mapping[str, int]) -> list[RecordBatch]:
        await self._pause()
        return await self._inner.read_new(stream_id, known)

    async def replicas(self, stream_id: str) -> list[str]:
        await self._pause()
        return await self._inner.replicas(stream_id)

    async def read_replica(
        self, stream_id: str, replica_id: str, from_sequence: int, to_sequence: int | None = None
    ) -> AsyncIterator[list[RecordBatch]]:
        async for batches in self._inner.read_replica(stream_id, replica_id, from_sequence):
            await self._pause()
            yield batches

    async def replica_version(self, stream_id: str, replica_id: str) -> dict[str, int]:
        await self._pause()
        return await self._inner.replica_version(stream_id, replica_id)

    def watch_replicated(self, stream_id: str) -> AbstractAsyncContextManager[Watcher]:
        return self._inner.watch_replicated(stream_id)


Program = list[str]  # "persist" or "query", per replica
programs = st.lists(
    st.lists(st.sampled_from(["persist", "persist", "query"]), min_size=1, max_size=8),
    min_size=2,
    max_size=4,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def handles(count: int, rng: random.Random) -> tuple[list[ReplicatedEventStream[Note]], Any]:
    backend = shared_memory_backend(f"laws-{uuid.uuid4().hex}")
    port = YieldingPort(MemoryEventLog(backend), rng)
    codec = Codec().for_type(Note)
    streams = [
        ReplicatedEventStream[Note](
            "s",
            Note,
            f"r{index}",
            events=port,  # type: ignore[arg-type]
            codec=codec,
            clock=lambda: T0,
            ensure_open=lambda: None,
        )
        for index in range(count)
    ]
    return streams, backend


async def run(
    streams: list[ReplicatedEventStream[Note]], plans: list[Program]
) -> list[PersistReply[Note]]:
    replies: list[PersistReply[Note]] = []

    async def replica(stream: ReplicatedEventStream[Note], plan: Program) -> None:
        for step, action in enumerate(plan):
            if action == "persist":
                before = stream.version
                reply = await stream.persist(Note(f"{stream.replica_id}-{step}"))
                # A new event follows everything its handle had observed.
                assert before < reply.envelope.version
                assert before.merge(reply.envelope.version) <= stream.version
                replies.append(reply)
            else:
                await stream.query().to_list()

    await asyncio.gather(*(replica(s, p) for s, p in zip(streams, plans, strict=False)))
    return replies


@given(programs, st.randoms(use_true_random=False))
def test_every_concurrent_pair_is_reported_to_a_writer(
    plans: list[Program], rng: random.Random
) -> None:
    streams, _backend = handles(len(plans), rng)
    replies = asyncio.run(run(streams, plans))
    told = {
        (reply.envelope.dot, other.dot) for reply in replies for other in reply.concurrent_updates
    }
    for reply in replies:  # everything reported really was concurrent
        for other in reply.concurrent_updates:
            assert other.version.concurrent_with(reply.envelope.version)
    envelopes = [reply.envelope for reply in replies]
    for i, a in enumerate(envelopes):
        for b in envelopes[i + 1 :]:
            if a.version.concurrent_with(b.version):
                assert (a.dot, b.dot) in told or (b.dot, a.dot) in told, (a, b)


@given(programs, st.randoms(use_true_random=False))
def test_every_replica_reads_one_causal_order(plans: list[Program], rng: random.Random) -> None:
    streams, _backend = handles(len(plans), rng)

    async def scenario() -> tuple[list[PersistReply[Note]], list[list[Envelope[Note]]]]:
        replies = await run(streams, plans)
        return replies, [await stream.query().to_list() for stream in streams]

    replies, orders = asyncio.run(scenario())
    written = {reply.envelope.dot: reply.envelope for reply in replies}
    for order in orders:
        assert order == orders[0]
    order = orders[0]
    assert {e.dot for e in order} == set(written)
    for envelope in order:
        assert envelope.event == written[envelope.dot].event
        assert envelope.version == written[envelope.dot].version
    for i, earlier in enumerate(order):
        for later in order[i + 1 :]:
            assert not later.version < earlier.version
    for stream in streams:  # each replica's own sequence is 1..n
        mine = [e.sequence for e in order if e.replica_id == stream.replica_id]
        assert mine == list(range(1, len(mine) + 1))
