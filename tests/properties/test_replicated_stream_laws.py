"""Replicated streams under random interleavings of several in-process replicas.

Each replica runs a random program of persists (alone, or a burst of
concurrent ones on one handle) and queries as its own task, on the memory
adapter and on the file adapter; a port wrapper yields to the event loop a
random number of times around every storage call and reads tiny pages, so
writes and reads of different replicas interleave in every way Hypothesis
can find.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import tempfile
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from calliope import Envelope, PersistReply
from calliope.adapters.codec import Codec
from calliope.adapters.files.changes import FileChanges
from calliope.adapters.files.event_log import FileEventLog
from calliope.adapters.memory import MemoryChanges, MemoryEventLog, shared_memory_backend
from calliope.shell.ports import NewEvent, RecordBatch, ReplicaLogPort, ReplicaPage
from calliope.shell.replicated_stream import ReplicatedEventStream
from calliope.shell.scope import AppScope


@attrs.frozen
class Note:
    text: str


class YieldingPort:
    """A replica log port, yielding to other tasks a random number of times
    before and after each call."""

    def __init__(self, inner: ReplicaLogPort, rng: random.Random) -> None:
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

    async def read_new(
        self,
        stream_id: str,
        known: Mapping[str, int],
        *,
        limit: int,
        exclude: Collection[str] = (),
    ) -> list[ReplicaPage]:
        await self._pause()
        # Tiny pages: the paging and its cuts are exercised too.
        pages = await self._inner.read_new(stream_id, known, limit=min(limit, 2), exclude=exclude)
        await self._pause()
        return pages

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


Program = list[str]  # "persist", "burst", "mixed" or "query", per replica
programs = st.lists(
    st.lists(
        st.sampled_from(["persist", "persist", "burst", "mixed", "query"]), min_size=1, max_size=8
    ),
    min_size=2,
    max_size=4,
)
adapters = st.sampled_from(["memory", "file"])
seeds = st.integers(0, 2**32).map(random.Random)  # a seeded rng: interleavings replay

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@contextlib.asynccontextmanager
async def handles(
    adapter: str, count: int, rng: random.Random
) -> AsyncIterator[list[ReplicatedEventStream[Note]]]:
    """``count`` replicas' handles on one stream, over a yielding port."""
    scope = AppScope("laws")
    scope.state = "open"
    with tempfile.TemporaryDirectory() as directory:
        inner: Any
        if adapter == "memory":
            backend = shared_memory_backend(f"laws-{uuid.uuid4().hex}")
            inner = MemoryEventLog(backend)
            changes: Any = MemoryChanges(backend)
        else:
            changes = FileChanges(directory, poll_interval=0.01)
            inner = FileEventLog(directory, durability="flush", segment_bytes=4096, changes=changes)
        port = YieldingPort(inner, rng)
        codec = Codec().for_type(Note)
        try:
            yield [
                ReplicatedEventStream[Note](
                    "s",
                    Note,
                    f"r{index}",
                    log=port,
                    changes=changes,
                    codec=codec,
                    clock=lambda: T0,
                    scope=scope,
                )
                for index in range(count)
            ]
        finally:
            await scope.close()
            if adapter == "file":
                await changes.aclose()
                await inner.aclose()


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
            elif action == "burst":  # concurrent persists on one handle
                before = stream.version
                burst = await asyncio.gather(
                    *(stream.persist(Note(f"{stream.replica_id}-{step}-{n}")) for n in range(3))
                )
                for reply in burst:
                    assert before < reply.envelope.version <= stream.version
                replies.extend(burst)
            elif action == "mixed":  # a query on the handle while it persists
                reply, _ = await asyncio.gather(
                    stream.persist(Note(f"{stream.replica_id}-{step}")), stream.query().to_list()
                )
                replies.append(reply)
            else:
                await stream.query().to_list()

    await asyncio.gather(*(replica(s, p) for s, p in zip(streams, plans, strict=False)))
    return replies


async def run_on(
    adapter: str, plans: list[Program], rng: random.Random
) -> list[PersistReply[Note]]:
    async with handles(adapter, len(plans), rng) as streams:
        return await run(streams, plans)


@settings(max_examples=60)
@given(adapters, programs, seeds)
def test_every_concurrent_pair_is_reported_to_a_writer(
    adapter: str, plans: list[Program], rng: random.Random
) -> None:
    replies = asyncio.run(run_on(adapter, plans, rng))
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


@settings(max_examples=60)
@given(adapters, programs, seeds)
def test_every_replica_reads_one_causal_order(
    adapter: str, plans: list[Program], rng: random.Random
) -> None:
    async def scenario() -> tuple[list[PersistReply[Note]], list[list[Envelope[Note]]]]:
        async with handles(adapter, len(plans), rng) as streams:
            replies = await run(streams, plans)
            return replies, [await stream.query().to_list() for stream in streams]

    replicas = [f"r{index}" for index in range(len(plans))]

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
    for replica in replicas:  # each replica's own sequence is 1..n
        mine = [e.sequence for e in order if e.replica_id == replica]
        assert mine == list(range(1, len(mine) + 1))
