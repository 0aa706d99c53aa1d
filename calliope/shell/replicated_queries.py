"""Reading a replicated stream: every replica's events, in causal order.

Both queries read the replica logs a page at a time (at most ``PAGE``
events per log per page, in one storage call) and order each page with
:func:`calliope.core.replication.merge_page`: ascending (version total,
replica id), which extends causality and which every replica computes alike
for the same events. Memory is bounded by the page, whatever the backlog; a
live query reads its next page only when its consumer has taken everything
from the last one, so a slow consumer holds back reading, not memory.

An event is yielded only once its whole causal past has been: logs are read
one after another while writers go on, so a reader may see an event whose
cause, in another log, was written after the reader passed that log.
:func:`calliope.core.replication.deliver_page` holds such an event back
until its cause arrives; a finite query leaves it out (a later query yields
it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from calliope.core.causal_delivery import CausalBuffer
from calliope.core.envelope import Envelope
from calliope.core.replication import (
    RecordBatch,
    StoredEvent,
    advance,
    deliver_page,
    merge_page,
)
from calliope.core.version_vector import VersionVector
from calliope.shell.live import LiveLifecycle
from calliope.shell.replicated_source import ReplicatedSource

__all__ = ["PAGE", "ReplicatedLiveQuery", "ReplicatedQuery"]

E = TypeVar("E")
S = TypeVar("S")

PAGE = 1024
"""Events read from each replica log per page."""


async def pages(
    source: ReplicatedSource[E], known: dict[str, int]
) -> AsyncIterator[list[tuple[RecordBatch, int]]]:
    """The events after ``known`` (per replica, the last sequence read), a
    page at a time in causal sort order; advances ``known``. Ends at what is
    committed when the reader gets there. One storage call per page."""
    while True:
        found = await source.log.read_new(source.stream_id, known, limit=PAGE)
        taken = merge_page(found)
        if not taken:
            return
        advance(known, taken)
        yield taken


class ReplicatedQuery(Generic[E]):
    """Every replica's events after ``since``, in the deterministic causal
    order, as they are now. Events whose causal past is not readable yet are
    left for a later query. Iterating makes the handle observe what it
    yields; the handle also observes ``since`` (the caller has those events,
    e.g. in a snapshot)."""

    def __init__(self, source: ReplicatedSource[E], since: VersionVector | None) -> None:
        self._source = source
        self._since = since if since is not None else VersionVector()

    async def _delivered(self) -> AsyncIterator[list[tuple[RecordBatch, int]]]:
        source = self._source
        await source.start()
        source.observe(self._since)
        buffer: CausalBuffer[StoredEvent] = CausalBuffer(delivered=self._since)
        async for taken in pages(source, self._since.to_dict()):
            buffer, released = deliver_page(buffer, taken)
            if released:
                yield released

    async def __aiter__(self) -> AsyncIterator[Envelope[E]]:
        source = self._source
        async for released in self._delivered():
            for batch, index in released:
                envelope: Envelope[E] = source.envelope(batch, index)
                source.observe_next(batch.writer, envelope.sequence)
                yield envelope

    async def aggregate(self, update_state: Callable[[S, E], S], init: S) -> S:
        """Fold the events in causal order into a state (without envelopes).
        O(events); memory O(page)."""
        source = self._source
        decode = source.codec.decode
        state = init
        async for released in self._delivered():
            newest: dict[str, int] = {}  # per writer, the last event released
            for batch, index in released:
                name, schema, data = batch.items[index]
                state = update_state(state, decode(name, schema, data))
                newest[batch.writer] = batch.version[batch.writer] + index
            source.observe(newest)  # released in causal order: its past is observed
        return state

    async def to_list(self) -> list[Envelope[E]]:
        return [envelope async for envelope in self]


class ReplicatedLiveQuery(Generic[E]):
    """Catch-up in the deterministic causal order, then every new event from
    any replica, each once its causal past has been yielded. Ends on
    :meth:`close`, on leaving ``async with``, on cancellation, or when the
    app closes (the iteration ends)."""

    def __init__(self, source: ReplicatedSource[E], since: VersionVector | None) -> None:
        self._source = source
        since = since if since is not None else VersionVector()
        self._buffer: CausalBuffer[StoredEvent] = CausalBuffer(delivered=since)
        self._known: dict[str, int] = since.to_dict()  # per replica, the last sequence read
        self._ready: deque[tuple[RecordBatch, int]] = deque()
        self._live = LiveLifecycle(
            source.scope, lambda: source.changes.watch(source.stream_id), source.start, self
        )

    async def __aenter__(self) -> ReplicatedLiveQuery[E]:
        await self._live.watcher()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop: a pending ``__anext__`` ends the iteration."""
        await self._live.close()

    aclose = close

    def __aiter__(self) -> ReplicatedLiveQuery[E]:
        return self

    async def __anext__(self) -> Envelope[E]:
        live = self._live
        source = self._source
        while not self._ready:
            if live.closed:
                raise StopAsyncIteration
            await live.watcher()  # before reading: no append slips between
            async with live.reading():
                found = await source.log.read_new(source.stream_id, self._known, limit=PAGE)
            taken = merge_page(found)
            if taken:
                advance(self._known, taken)
                self._buffer, released = deliver_page(self._buffer, taken)
                self._ready.extend(released)
                continue
            await live.wait()
        if live.closed:  # nothing more once closed, buffered or not
            raise StopAsyncIteration
        batch, index = self._ready.popleft()
        envelope: Envelope[E] = source.envelope(batch, index)
        source.observe(envelope.version)
        return envelope
