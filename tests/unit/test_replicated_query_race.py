"""A query never yields an event whose cause it could not read.

Replica logs are read one after another; an event read from a later log may
depend on one appended to an earlier log after the reader passed it. Such an
event must be left out (and not observed), or the reader would claim a past
it never saw.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs

from calliope import VersionVector
from calliope.adapters.codec import Codec
from calliope.adapters.memory import MemoryEventLog, shared_memory_backend
from calliope.shell.ports import RecordBatch
from calliope.shell.replicated_stream import ReplicatedEventStream

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@attrs.frozen
class Note:
    text: str


class HookedPort(MemoryEventLog):
    """Runs ``hook`` right after replica "a"'s log has been read once."""

    hook: Callable[[], Awaitable[None]] | None = None

    async def read_replica(
        self, stream_id: str, replica_id: str, from_sequence: int, to_sequence: int | None = None
    ) -> AsyncIterator[list[RecordBatch]]:
        async for batches in super().read_replica(stream_id, replica_id, from_sequence):
            yield batches
        if replica_id == "a" and self.hook is not None:
            hook, self.hook = self.hook, None
            await hook()


def stream(port: MemoryEventLog, replica: str) -> ReplicatedEventStream[Note]:
    return ReplicatedEventStream(
        "s",
        Note,
        replica,
        events=port,
        codec=Codec().for_type(Note),
        clock=lambda: T0,
        ensure_open=lambda: None,
    )


async def test_an_event_whose_cause_was_written_mid_query_is_left_out() -> None:
    port = HookedPort(shared_memory_backend(f"race-{uuid.uuid4().hex}"))
    a, b, reader = stream(port, "a"), stream(port, "b"), stream(port, "reader")
    await b.persist(Note("b0"))
    await a.persist(Note("a1"))

    async def meanwhile() -> None:
        await a.persist(Note("a2"))  # after the reader passed a's log
        await b.query().to_list()
        await b.persist(Note("b1"))  # depends on a2

    port.hook = meanwhile
    seen = [e.event.text for e in await reader.query().to_list()]
    assert seen == ["a1", "b0"]
    assert reader.version == VersionVector({"a": 1, "b": 1})
    # The next query sees everything, in causal order.
    assert [e.event.text for e in await reader.query().to_list()] == ["a1", "b0", "a2", "b1"]


class SlowAppend(MemoryEventLog):
    """Holds each append of replica "a" until ``release`` is set, then lets
    other tasks run before returning."""

    release: asyncio.Event

    async def append_replica(self, *args: Any, **kwargs: Any) -> RecordBatch | None:
        if args[1] == "a":
            await self.release.wait()
        batch = await super().append_replica(*args, **kwargs)
        if args[1] == "a":
            await asyncio.sleep(0.02)
        return batch


async def test_a_concurrent_event_observed_by_the_handle_mid_persist_is_still_reported() -> None:
    port = SlowAppend(shared_memory_backend(f"told-{uuid.uuid4().hex}"))
    port.release = asyncio.Event()
    a, c = stream(port, "a"), stream(port, "c")
    seen: list[str] = []

    async def follow() -> None:  # another task on a's handle, observing as it goes
        async with a.live_query() as live:
            async for envelope in live:
                seen.append(envelope.event.text)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.01)
    writing = asyncio.create_task(a.persist(Note("a1")))
    await asyncio.sleep(0.01)
    other = await c.persist(Note("c1"))  # reads before a1 is written: not told
    port.release.set()
    mine = await writing
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)
    assert mine.envelope.version.concurrent_with(other.envelope.version)
    assert not other.concurrent_update_detected
    assert [e.event.text for e in mine.concurrent_updates] == ["c1"]
