"""A live query whose read failed raises again on every step until closed.

It must neither hang (waiting for appends it will never read) nor go on
silently past what it could not read, even once the storage recovers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from typing import TypeVar

import pytest

from calliope import StorageError
from calliope.adapters.codec import Codec
from calliope.adapters.memory import MemoryChanges, MemoryEventLog, shared_memory_backend
from calliope.shell.event_stream import EventStream
from calliope.shell.ports import RecordBatch, ReplicaPage
from calliope.shell.queries import LiveQuery
from calliope.shell.replicated_stream import ReplicatedEventStream
from tests.support import T0, Note, note_handle, open_scope

T = TypeVar("T")

PATIENCE = 5.0
"""Seconds a step may take before it counts as hung (never reached when correct)."""


class FailingReads(MemoryEventLog):
    """Reads fail with StorageError while ``failing`` is set; appends work."""

    failing = False

    def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        return self._checked(super().read(stream_id, from_sequence, to_sequence))

    async def _checked(
        self, batches: AsyncIterator[list[RecordBatch]]
    ) -> AsyncIterator[list[RecordBatch]]:
        async for batch in batches:
            self._check()
            yield batch

    async def read_new(
        self,
        stream_id: str,
        known: Mapping[str, int],
        *,
        limit: int,
        exclude: Collection[str] = (),
    ) -> list[ReplicaPage]:
        self._check()
        return await super().read_new(stream_id, known, limit=limit, exclude=exclude)

    def _check(self) -> None:
        if self.failing:
            raise StorageError("the disk went away (injected)")


async def step(live: AsyncIterator[T]) -> T:
    return await asyncio.wait_for(anext(live), PATIENCE)


def plain_stream(port: MemoryEventLog) -> EventStream[Note]:
    return EventStream(
        "s",
        Note,
        log=port,
        changes=MemoryChanges(port._backend),
        codec=Codec().for_type(Note),
        writer=lambda: "w",
        clock=lambda: T0,
        scope=open_scope(),
    )


@pytest.mark.parametrize("kind", ["plain", "replicated"])
async def test_a_live_query_whose_read_failed_raises_again_until_closed(kind: str) -> None:
    backend = shared_memory_backend(f"fail-{uuid.uuid4().hex}")
    port = FailingReads(backend)
    writer: EventStream[Note] | ReplicatedEventStream[Note]
    reader: EventStream[Note] | ReplicatedEventStream[Note]
    if kind == "plain":
        writer, reader = plain_stream(MemoryEventLog(backend)), plain_stream(port)
    else:
        writer, reader = note_handle(MemoryEventLog(backend), "a"), note_handle(port, "r")
    await writer.persist(Note("one"))
    async with reader.live_query() as live:
        assert (await step(live)).event == Note("one")
        port.failing = True
        await writer.persist(Note("two"))
        for _ in range(3):
            with pytest.raises(StorageError, match="injected"):
                await step(live)
        port.failing = False  # recovered: the query still says it failed
        with pytest.raises(StorageError, match="injected"):
            await step(live)
        if isinstance(live, LiveQuery):
            assert live.next_sequence == 2  # the failed read consumed nothing
        await live.close()
        with pytest.raises(StopAsyncIteration):
            await step(live)
