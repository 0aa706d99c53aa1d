"""A query never yields an event whose cause it could not read.

Replica logs are read one after another; an event read from a later log may
depend on one appended to an earlier log after the reader passed it. Such an
event must be left out (and not observed), or the reader would claim a past
it never saw.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from calliope import VersionVector
from calliope.adapters.memory import MemoryEventLog, shared_memory_backend
from calliope.shell.ports import RecordBatch, ReplicaPage
from calliope.shell.replicated_stream import ReplicatedEventStream
from tests.support import Note, note_handle


class StalePort(MemoryEventLog):
    """While ``stale`` is set, reads see replica "a"'s log as it was when
    ``stale`` was set: as if the reader had passed that log before "a"
    appended more (logs are read one after another while writers go on)."""

    stale: dict[str, int] | None = None

    async def read_new(
        self,
        stream_id: str,
        known: Mapping[str, int],
        *,
        limit: int,
        exclude: Collection[str] = (),
    ) -> list[ReplicaPage]:
        pages = await super().read_new(stream_id, known, limit=limit, exclude=exclude)
        if self.stale is None:
            return pages
        cut = self.stale.get("a", 0)
        return [
            ReplicaPage(page.replica, [b for b in page.batches if b.last_sequence <= cut], False)
            if page.replica == "a"
            else page
            for page in pages
        ]


def stream(port: MemoryEventLog, replica: str) -> ReplicatedEventStream[Note]:
    return note_handle(port, replica)


async def test_an_event_whose_cause_was_written_mid_query_is_left_out() -> None:
    backend = shared_memory_backend(f"race-{uuid.uuid4().hex}")
    port = StalePort(backend)  # the reader's view; the writers see the store as it is
    a, b = stream(MemoryEventLog(backend), "a"), stream(MemoryEventLog(backend), "b")
    reader = stream(port, "reader")
    await b.persist(Note("b0"))
    await a.persist(Note("a1"))
    port.stale = {"a": 1}  # the reader has passed a's log at a1 ...
    await a.persist(Note("a2"))
    await b.query().to_list()
    await b.persist(Note("b1"))  # ... when b1, which depends on a2, is written
    seen = [e.event.text for e in await reader.query().to_list()]
    assert seen == ["a1", "b0"]
    assert reader.version == VersionVector({"a": 1, "b": 1})
    # The next query sees everything, in causal order.
    port.stale = None
    assert [e.event.text for e in await reader.query().to_list()] == ["a1", "b0", "a2", "b1"]


async def test_a_live_query_holds_back_an_event_until_its_cause_is_read() -> None:
    backend = shared_memory_backend(f"race-{uuid.uuid4().hex}")
    port = StalePort(backend)  # the reader's view; the writers see the store as it is
    a, b = stream(MemoryEventLog(backend), "a"), stream(MemoryEventLog(backend), "b")
    reader = stream(port, "reader")
    await a.persist(Note("a1"))
    port.stale = {"a": 1}
    await a.persist(Note("a2"))
    await b.query().to_list()
    await b.persist(Note("b1"))  # depends on a2, which the reader cannot see yet
    seen: list[str] = []
    async with reader.live_query() as live:
        seen.append((await anext(live)).event.text)
        waiting = asyncio.ensure_future(anext(live))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # b1 is held back: its cause is missing
        port.stale = None
        await a.persist(Note("a3"))  # wakes the live query, which reads a2 now
        seen.append((await asyncio.wait_for(waiting, 2)).event.text)
        seen.append((await asyncio.wait_for(anext(live), 2)).event.text)
        seen.append((await asyncio.wait_for(anext(live), 2)).event.text)
    assert seen == ["a1", "a2", "b1", "a3"]


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
