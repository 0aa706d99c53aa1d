"""Replicated event streams: many replicas write one stream concurrently.

Each replica appends to its own log; every event carries a version vector.
Reading merges the logs in one deterministic causal order: ascending
(version total, replica id), which extends causality because an event's
total exceeds that of everything in its causal past, and which every
replica computes alike for the same events. Each replica's own log is
already in that order, so the merge streams, one batch per replica at a
time.

An event is yielded only once its whole causal past has been: logs are
read one after another while writers go on, so a reader may see an event
whose cause, in another log, it read before that cause was written. A
finite query leaves such an event out (it belongs to a later query); a
live query holds it back in a :class:`~calliope.core.CausalBuffer` until
its cause arrives.

Persist writes first, then reads what other replicas appended since the
handle last looked. If two events are concurrent, whichever of their
writers finished writing second reads the other's event afterwards and
reports it: at least one writer is always told.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from calliope.core.causal_delivery import CausalBuffer, receive
from calliope.core.causal_order import causal_sort_key, detect_concurrent
from calliope.core.envelope import Envelope
from calliope.core.persist_reply import PersistReply
from calliope.core.version_vector import VersionVector
from calliope.errors import StorageError
from calliope.shell.live import LiveLifecycle
from calliope.shell.ports import EventLogPort, RecordBatch, TypeCodec
from calliope.shell.records import envelopes_of, from_timestamp_us, to_timestamp_us

__all__ = ["ReplicatedEventStream", "ReplicatedLiveQuery", "ReplicatedQuery"]

E = TypeVar("E")
S = TypeVar("S")


class _Cursor:
    """One replica log being merged: its batches, one chunk at a time."""

    def __init__(self, replica: str, chunks: AsyncIterator[list[RecordBatch]]) -> None:
        self.replica = replica
        self._chunks = chunks
        self._batches: deque[RecordBatch] = deque()
        self._index = 0
        self._total = 0  # version total of the head event

    async def fill(self) -> bool:
        """Make sure there is a head event; False when the log is exhausted."""
        while not self._batches:
            chunk = await anext(self._chunks, None)
            if chunk is None:
                return False
            self._batches.extend(chunk)
            self._index = 0
            if self._batches:
                self._total = sum(self._batches[0].version.values())
        return True

    def ready(self) -> bool:
        """Whether a head event is buffered (no reading needed)."""
        return bool(self._batches)

    def key(self) -> tuple[int, str]:
        return (self._total, self.replica)

    def pop(self) -> tuple[RecordBatch, int]:
        batch = self._batches[0]
        index = self._index
        if index + 1 < len(batch.items):
            self._index = index + 1
            self._total += 1
        else:
            self._batches.popleft()
            self._index = 0
            if self._batches:
                self._total = sum(self._batches[0].version.values())
        return batch, index


async def _merged(
    events: EventLogPort, stream_id: str, since: VersionVector
) -> AsyncIterator[list[tuple[RecordBatch, int]]]:
    """Every event after ``since`` in every replica log, by (total, replica),
    as (batch, index) pairs, in runs (a run ends when a log needs reading)."""
    cursors = [
        _Cursor(replica, events.read_replica(stream_id, replica, since[replica] + 1))
        for replica in await events.replicas(stream_id)
    ]
    heap: list[tuple[tuple[int, str], int]] = []
    for position, cursor in enumerate(cursors):
        if await cursor.fill():
            heap.append((cursor.key(), position))
    heapq.heapify(heap)
    while heap:
        run: list[tuple[RecordBatch, int]] = []
        while True:
            position = heap[0][1]
            cursor = cursors[position]
            run.append(cursor.pop())
            if not cursor.ready():
                break
            heapq.heapreplace(heap, (cursor.key(), position))
        yield run
        if await cursor.fill():
            heapq.heapreplace(heap, (cursor.key(), position))
        else:
            heapq.heappop(heap)


def _event_version(batch: RecordBatch, index: int) -> dict[str, int]:
    version = dict(batch.version)
    version[batch.writer] += index
    return version


class _Source(Generic[E]):
    """What a replicated stream handle and its queries share."""

    def __init__(
        self,
        stream_id: str,
        replica_id: str,
        events: EventLogPort,
        codec: TypeCodec[Any],
        ensure_open: Callable[[], None],
        before_first_use: Callable[[], Awaitable[None] | None],
    ) -> None:
        self.stream_id = stream_id
        self.replica_id = replica_id
        self.events = events
        self.codec = codec
        self.ensure_open = ensure_open
        self._before_first_use = before_first_use
        self._counts: dict[str, int] = {}  # what the handle has observed
        self._version: VersionVector | None = VersionVector()
        self.started = False
        self._starting = asyncio.Lock()

    @property
    def version(self) -> VersionVector:
        """What the handle has observed, as a vector."""
        if self._version is None:
            self._version = VersionVector.unchecked(dict(self._counts))
        return self._version

    async def start(self) -> None:
        """Resume the replica's knowledge from its own log (once, even when
        several tasks start using the handle at the same time)."""
        self.ensure_open()
        if self.started:
            return
        async with self._starting:
            if not self.started:
                pending = self._before_first_use()
                if pending is not None:
                    await pending
                own = await self.events.replica_version(self.stream_id, self.replica_id)
                self.observe(own)
                self.started = True

    def observe(self, version: Mapping[str, int]) -> None:
        """Merge an observed version into what the handle has seen."""
        counts = self._counts
        for replica, counter in version.items():
            if counter > counts.get(replica, 0):
                counts[replica] = counter
                self._version = None

    def observe_next(self, replica: str, counter: int) -> None:
        """Observe one event whose causal past the handle has already seen."""
        if counter > self._counts.get(replica, 0):
            self._counts[replica] = counter
            self._version = None

    def envelope(self, batch: RecordBatch, index: int, version: dict[str, int]) -> Envelope[E]:
        """Event ``index`` of ``batch``, decoded, with its version."""
        name, schema, data = batch.items[index]
        return Envelope(
            stream_id=self.stream_id,
            replica_id=batch.writer,
            sequence=version[batch.writer],
            version=VersionVector.unchecked(version),
            timestamp=from_timestamp_us(batch.timestamp_us),
            event=self.codec.decode(name, schema, data),
        )

    def envelopes(self, batches: list[RecordBatch]) -> list[Envelope[E]]:
        return [
            self.envelope(batch, index, _event_version(batch, index))
            for batch in batches
            for index in range(len(batch.items))
        ]


class _Held(NamedTuple):
    """An event waiting in a causal buffer for its causal past."""

    replica_id: str
    version: VersionVector
    batch: RecordBatch
    offset: int  # of the event in the batch


class ReplicatedQuery(Generic[E]):
    """Every replica's events after ``since``, in the deterministic causal
    order, as they are now. Events whose causal past is not readable yet are
    left for a later query. Iterating makes the handle observe what it
    yields; the handle also observes ``since`` (the caller has those events,
    e.g. in a snapshot)."""

    def __init__(self, source: _Source[E], since: VersionVector | None) -> None:
        self._source = source
        self._since = since if since is not None else VersionVector()

    async def _runs(self) -> AsyncIterator[list[tuple[RecordBatch, int]]]:
        """The deliverable events, in runs: each run's events in causal order."""
        source = self._source
        await source.start()
        source.observe(self._since)
        delivered = self._since.to_dict()
        # Per writer, the batch whose other replicas' past is all delivered
        # (the same for every event of a batch, so checked once per batch).
        checked: dict[str, RecordBatch] = {}
        held: CausalBuffer[_Held] | None = None
        async for run in _merged(source.events, source.stream_id, self._since):
            ready: list[tuple[RecordBatch, int]] = []
            for batch, index in run:
                writer = batch.writer
                own = batch.version[writer] + index
                if held is None:
                    if checked.get(writer) is not batch and all(
                        delivered.get(replica, 0) >= counter
                        for replica, counter in batch.version.items()
                        if replica != writer
                    ):
                        checked[writer] = batch
                    if checked.get(writer) is batch and delivered.get(writer, 0) == own - 1:
                        delivered[writer] = own
                        ready.append((batch, index))
                        continue
                    # Its causal past is not all here (yet). From now on,
                    # deliver through a causal buffer; what it still holds at
                    # the end had a cause written after this reader passed
                    # its log, and a later query will yield it.
                    held = CausalBuffer(delivered=VersionVector(delivered))
                version = VersionVector.unchecked(_event_version(batch, index))
                held, released = receive(held, _Held(writer, version, batch, index))
                ready.extend((item.batch, item.offset) for item in released)
            if ready:
                yield ready

    async def __aiter__(self) -> AsyncIterator[Envelope[E]]:
        source = self._source
        async for run in self._runs():
            for batch, index in run:
                envelope: Envelope[E] = source.envelope(batch, index, _event_version(batch, index))
                source.observe_next(batch.writer, envelope.sequence)
                yield envelope

    async def aggregate(self, update_state: Callable[[S, E], S], init: S) -> S:
        """Fold the events in causal order into a state (without envelopes)."""
        source = self._source
        decode = source.codec.decode
        state = init
        async for run in self._runs():
            newest: dict[str, int] = {}  # per writer, the last event of the run
            for batch, index in run:
                name, schema, data = batch.items[index]
                state = update_state(state, decode(name, schema, data))
                newest[batch.writer] = batch.version[batch.writer] + index
            source.observe(newest)  # the run was delivered in causal order
        return state

    async def to_list(self) -> list[Envelope[E]]:
        return [envelope async for envelope in self]


class ReplicatedLiveQuery(Generic[E]):
    """Catch-up in the deterministic causal order, then every new event from
    any replica, each once its causal past has been yielded. Ends on
    :meth:`close`, on leaving ``async with``, or on cancellation."""

    def __init__(self, source: _Source[E], since: VersionVector | None) -> None:
        self._source = source
        since = since if since is not None else VersionVector()
        self._since = since
        self._buffer: CausalBuffer[Envelope[E]] = CausalBuffer(delivered=since)
        self._read: dict[str, int] = since.to_dict()  # per replica, the last sequence read
        self._ready: deque[Envelope[E]] = deque()
        self._catch_up: AsyncIterator[list[tuple[RecordBatch, int]]] | None = None
        self._caught_up = False
        self._live = LiveLifecycle(
            lambda: source.events.watch_replicated(source.stream_id), source.start
        )

    async def __aenter__(self) -> ReplicatedLiveQuery[E]:
        await self._live.watcher()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop: a pending ``__anext__`` ends the iteration."""
        reader, self._catch_up = self._catch_up, None
        await self._live.close(reader)

    aclose = close

    def __aiter__(self) -> ReplicatedLiveQuery[E]:
        return self

    def _arrive(self, envelopes: list[Envelope[E]]) -> None:
        for envelope in envelopes:
            replica = envelope.replica_id
            if envelope.sequence > self._read.get(replica, 0):
                self._read[replica] = envelope.sequence
            self._buffer, released = receive(self._buffer, envelope)
            self._ready.extend(released)

    async def __anext__(self) -> Envelope[E]:
        if self._live.closed.is_set():  # nothing more once closed, buffered or not
            raise StopAsyncIteration
        source = self._source
        while not self._ready:
            if self._live.closed.is_set():
                raise StopAsyncIteration
            await self._live.watcher()  # before reading: no append slips between
            if not self._caught_up:
                if self._catch_up is None:
                    self._catch_up = aiter(_merged(source.events, source.stream_id, self._since))
                run = await anext(self._catch_up, None)
                if run is None:
                    self._catch_up = None
                    self._caught_up = True
                    continue
                self._arrive([source.envelope(b, i, _event_version(b, i)) for b, i in run])
                continue
            batches = await source.events.read_new(source.stream_id, self._read)
            if batches:
                fresh = sorted(source.envelopes(batches), key=causal_sort_key)
                self._arrive(fresh)
                continue
            await self._live.wait()
        envelope = self._ready.popleft()
        source.observe(envelope.version)
        return envelope


class ReplicatedEventStream(Generic[E]):
    """One replica's handle on a stream that many replicas write concurrently.

    Obtained from ``app.journal.replicated_event_stream(stream_id, EventType)``.
    ``version`` is what this handle has observed: the replica's own past
    (resumed from the journal on first use), what its queries yielded, and
    what persist replies reported. A persisted event's version is that
    observed version advanced at this replica, so it follows everything the
    handle has seen and nothing else.
    """

    def __init__(
        self,
        stream_id: str,
        event_type: Any,
        replica_id: str,
        *,
        events: EventLogPort,
        codec: TypeCodec[Any],
        clock: Callable[[], Any],
        ensure_open: Callable[[], None],
        before_first_use: Callable[[], Awaitable[None] | None] = lambda: None,
    ) -> None:
        self.stream_id = stream_id
        self.event_type = event_type
        self.replica_id = replica_id
        self._clock = clock
        self._source: _Source[E] = _Source(
            stream_id, replica_id, events, codec, ensure_open, before_first_use
        )

    def __repr__(self) -> str:
        return (
            f"ReplicatedEventStream({self.stream_id!r}, replica={self.replica_id!r}, "
            f"version={self.version!r})"
        )

    @property
    def version(self) -> VersionVector:
        """What this handle has observed (see the class docstring)."""
        return self._source.version

    def query(self, since: VersionVector | None = None) -> ReplicatedQuery[E]:
        """Every replica's events not at or below ``since`` (default: all), in
        the deterministic causal order."""
        return ReplicatedQuery(self._source, since)

    def live_query(self, since: VersionVector | None = None) -> ReplicatedLiveQuery[E]:
        """Catch-up from ``since``, then new events from every replica."""
        return ReplicatedLiveQuery(self._source, since)

    async def persist(self, event: E) -> PersistReply[E]:
        """Append ``event`` after everything this handle has observed; durable
        on return. The reply lists the events by others that were concurrent
        with it (not in its causal past); the handle then observes them, so
        an event persisted next (e.g. one resolving the conflict) follows them."""
        source = self._source
        await source.start()
        # What the new event follows. Read what is new relative to *this*,
        # not to the handle's version after the write: another task on the
        # handle may observe a concurrent event meanwhile, and it must still
        # be reported.
        observed = source.version.to_dict()
        stored = await source.events.append_replica(
            self.stream_id,
            self.replica_id,
            [source.codec.encode(event)],
            observed=observed,
            timestamp_us=to_timestamp_us(self._clock()),
        )
        if stored is None:  # pragma: no cover - one event always makes a batch
            raise StorageError("the journal stored nothing for a persist; report this as a bug")
        (envelope,) = envelopes_of(self.stream_id, stored, [event])
        new = [
            other
            for other in source.envelopes(await source.events.read_new(self.stream_id, observed))
            if other.dot != envelope.dot
        ]
        concurrent = sorted(detect_concurrent(envelope.version, new), key=causal_sort_key)
        source.observe(envelope.version)
        for other in new:
            source.observe(other.version)
        return PersistReply(envelope=envelope, concurrent_updates=tuple(concurrent))
