"""Bounded by design: what each operation reads, holds and keeps.

Faults guarded here (each failed before the fix; none is a timing test):

* concurrent persists on one replicated handle each re-read (and decoded)
  everything since a shared observed version, their own in-flight events
  included: N persists read O(N^2) events;
* a replicated live query read a whole backlog at once, however slow its
  consumer;
* the file adapter kept per-stream state for every stream ever touched;
* every live query polled the files itself (100 idle ones used a core);
* a group commit caught up with other writers' appends on the event loop;
* closing a live query from another task mid-read left its reader to the
  garbage collector.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from pathlib import Path
from typing import Any

import calliope
from calliope.adapters.codec import Codec
from calliope.adapters.files.event_log import _HANDLES
from calliope.adapters.files.segment_log import SegmentLog
from calliope.adapters.files.segment_writer import AppendRequest
from calliope.adapters.files.store import FileStore
from calliope.adapters.memory import MemoryChanges, MemoryEventLog, shared_memory_backend
from calliope.adapters.packing import pack_data
from calliope.shell.ports import RecordBatch, ReplicaPage
from calliope.shell.replica_merge import PAGE
from calliope.shell.replicated_stream import ReplicatedEventStream
from tests.integration.events import ItemAdded
from tests.support import T0, Note, note_handle, open_scope


class CountingPort(MemoryEventLog):
    """The memory replica log port, counting the events its reads return."""

    read_events = 0
    largest_read = 0

    async def read_new(
        self,
        stream_id: str,
        known: Mapping[str, int],
        *,
        limit: int,
        exclude: Collection[str] = (),
    ) -> list[ReplicaPage]:
        pages = await super().read_new(stream_id, known, limit=limit, exclude=exclude)
        count = sum(len(b.items) for page in pages for b in page.batches)
        self.read_events += count
        self.largest_read = max(self.largest_read, count)
        return pages


class CountingCodec:
    """A codec that counts the events it decodes."""

    def __init__(self) -> None:
        self._inner = Codec().for_type(Note)
        self.decoded = 0

    def encode(self, value: Any) -> Any:
        return self._inner.encode(value)

    def decode(self, type_name: str, schema_version: int, data: Any) -> Any:
        self.decoded += 1
        return self._inner.decode(type_name, schema_version, data)


def handle(port: MemoryEventLog, replica: str, codec: Any = None) -> ReplicatedEventStream[Note]:
    return note_handle(port, replica, codec)


async def test_concurrent_persists_on_one_handle_read_and_decode_only_what_is_new() -> None:
    backend = shared_memory_backend(f"costs-{uuid.uuid4().hex}")
    other = handle(MemoryEventLog(backend), "b")
    for n in range(10):
        await other.persist(Note(f"b{n}"))
    port = CountingPort(backend)
    codec = CountingCodec()
    mine = handle(port, "a", codec)
    replies = await asyncio.gather(*(mine.persist(Note(f"a{n}")) for n in range(400)))
    assert all(r.concurrent_update_detected for r in replies)  # b's 10 were news to all
    assert {len(r.concurrent_updates) for r in replies} == {10}
    # The other replica's 10 events are read once per round (a handful of
    # rounds), never the handle's own in-flight events: not 400 x 400 / 2.
    assert port.read_events <= 10 * 4
    assert codec.decoded == 10  # only what the replies list, once
    # Its own events are all there, once each, in order.
    own = [e.sequence for e in await mine.query().to_list() if e.replica_id == "a"]
    assert own == list(range(1, 401))


async def test_a_replicated_live_query_reads_a_backlog_a_page_at_a_time() -> None:
    backend = shared_memory_backend(f"costs-{uuid.uuid4().hex}")
    writer = handle(MemoryEventLog(backend), "b")
    port = CountingPort(backend)
    reader = handle(port, "a")
    async with reader.live_query() as live:
        await writer.persist(Note("first"))
        assert (await anext(live)).event == Note("first")
        for n in range(5 * PAGE):  # the consumer stalls while a backlog builds
            await writer.persist(Note(f"n{n}"))
        assert (await anext(live)).event == Note("n0")
        held = len(live._ready) + live._buffer.pending
    assert port.largest_read <= PAGE  # never the whole backlog in one read
    assert held <= PAGE


async def test_the_file_store_keeps_state_for_a_bounded_number_of_logs(tmp_path: Path) -> None:
    async with calliope.open(tmp_path / "data", replica_id="w", durability="flush") as app:
        for n in range(_HANDLES + 300):
            stream = app.journal.event_stream(f"stream-{n}", ItemAdded)
            await stream.persist(ItemAdded(str(n)))
            await stream.query().to_list()
        store = app._store
        assert isinstance(store, FileStore)
        assert len(store.plain._logs) <= _HANDLES


async def test_live_queries_on_one_stream_share_one_watch(tmp_path: Path) -> None:
    async with calliope.open(tmp_path / "data", replica_id="w") as app:
        stream = app.journal.replicated_event_stream("shared", ItemAdded)
        await stream.persist(ItemAdded("x"))
        store = app._store
        assert isinstance(store, FileStore)
        queries = [stream.live_query() for _ in range(50)]
        for query in queries:
            await query.__aenter__()
        consumers = [asyncio.create_task(anext(q)) for q in queries]
        await asyncio.gather(*consumers)
        assert list(store.changes._watched) == ["shared"]  # one record for the stream
        assert store.changes._watched["shared"].count == 50
        pollers = [t for t in asyncio.all_tasks() if "_poll" in repr(t.get_coro())]
        assert len(pollers) == 1  # one poller for the whole app
        for query in queries:
            await query.close()
        assert store.changes._watched == {}


def test_a_group_commit_never_catches_up_with_much_on_the_event_loop(tmp_path: Path) -> None:
    """Another writer appended far more than a quick catch-up: the inline
    (event-loop) attempt declines, so the worker thread does it."""
    directory = str(tmp_path / "log")

    def log() -> SegmentLog:
        return SegmentLog(directory, stream_id="s", durability="flush", segment_bytes=64 << 20)

    def request(n: int) -> AppendRequest:
        item = pack_data(("t", 1, {"n": n, "pad": "x" * 1000}))
        return AppendRequest("w", [], [item], len(item), None, 0)

    here, elsewhere = log(), log()
    assert here.try_append([request(0)]) is None  # nothing known of the tail yet: a thread
    here.append([request(0)])
    for n in range(1, 1001):  # about 1 MB by "another process"
        elsewhere.append([request(n)])
    assert here.try_append([request(-1)]) is None
    results = here.append([request(-1)])  # the thread path catches up
    assert isinstance(results[0], RecordBatch) and results[0].first_sequence == 1002
    assert here.try_append([request(-2)]) is not None  # caught up: quick again
    here.close()
    elsewhere.close()


class SlowReads(MemoryEventLog):
    """Holds every read step until ``go`` is set; records when a reader is
    released (its generator closed)."""

    go: asyncio.Event
    reading: asyncio.Event
    released = False

    async def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        try:
            async for batches in super().read(stream_id, from_sequence, to_sequence):
                self.reading.set()
                await self.go.wait()
                yield batches
        finally:
            self.released = True


async def test_closing_a_live_query_mid_read_releases_its_reader() -> None:
    backend = shared_memory_backend(f"costs-{uuid.uuid4().hex}")
    port = SlowReads(backend)
    port.go, port.reading = asyncio.Event(), asyncio.Event()
    await port.append(
        "p",
        "w",
        [Codec().for_type(ItemAdded).encode(ItemAdded("a"))],
        expected_sequence=None,
        timestamp_us=0,
    )
    scope = open_scope()
    stream: calliope.EventStream[ItemAdded] = calliope.EventStream(
        "p",
        ItemAdded,
        log=port,
        changes=MemoryChanges(backend),
        codec=Codec().for_type(ItemAdded),
        writer=lambda: "w",
        clock=lambda: T0,
        scope=scope,
    )
    live = stream.live_query()
    await live.__aenter__()
    consumer = asyncio.create_task(anext(live))
    await port.reading.wait()  # the consumer is in the middle of a read step
    closing = asyncio.create_task(live.close())
    await asyncio.sleep(0.01)
    assert not closing.done()  # close waits for the step, not tearing the reader away
    port.go.set()
    await asyncio.wait_for(closing, 2)
    assert port.released  # released by close, not left to the garbage collector
    result = await asyncio.gather(consumer, return_exceptions=True)
    assert isinstance(result[0], StopAsyncIteration)


async def test_appends_to_many_streams_at_once_keep_few_files_open(tmp_path: Path) -> None:
    """More streams written at the same time than the store keeps logs
    for: files are closed behind the appends, so the process does not run
    out of descriptors."""
    fds = Path("/proc/self/fd")
    count = _HANDLES + 300
    async with calliope.open(tmp_path / "data", replica_id="w", durability="flush") as app:
        before = len(list(fds.iterdir()))
        streams = [app.journal.event_stream(f"s{n}", ItemAdded) for n in range(count)]
        envelopes = await asyncio.gather(*(s.persist(ItemAdded("x")) for s in streams))
        after = len(list(fds.iterdir()))
        assert [e.sequence for e in envelopes] == [1] * count
        again = await asyncio.gather(*(s.persist(ItemAdded("y")) for s in streams[:5]))
        assert [e.sequence for e in again] == [2] * 5  # closed logs reopen and go on
    assert after - before <= 2 * _HANDLES + 16
