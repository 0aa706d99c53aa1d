"""Reading a replicated stream: every replica's events, in causal order.

Both queries read the replica logs a page at a time (at most ``PAGE``
events per log, in one storage call for all the logs that need reading) and
merge them with a :class:`~calliope.shell.replica_merge.ReplicaMerge`:
ascending (version total, replica id), which extends causality and which
every replica computes alike for the same events. Memory is bounded by a
page per log, whatever the backlog; a live query reads only when its
consumer has taken everything read, so a slow consumer holds back reading,
not memory.

An event is yielded only once its whole causal past has been: logs are read
one after another while writers go on, so a reader may see an event whose
cause, in another log, was written after the reader passed that log.
:func:`calliope.core.replication.deliver_page` holds such an event back
until its cause arrives; a finite query leaves it out (a later query yields
it).

An event the handle cannot decode raises EventDecodingError, or, with
``undecodable="skip"``, is left out and reported
(:mod:`calliope.shell.skipped`); it still counts as delivered (the handle
observes it), so the events that follow it causally are not held back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from calliope.core.causal_delivery import CausalBuffer
from calliope.core.envelope import Envelope
from calliope.core.replication import RecordBatch, StoredEvent, deliver_page
from calliope.core.version_vector import VersionVector
from calliope.errors import CorruptJournalError, EventDecodingError
from calliope.shell.live import LiveLifecycle
from calliope.shell.queries import SLICE
from calliope.shell.replica_merge import PAGE, ReplicaMerge
from calliope.shell.replicated_source import ReplicatedSource
from calliope.shell.skipped import RAISE, UndecodablePolicy

__all__ = ["ReplicatedLiveQuery", "ReplicatedQuery"]

E = TypeVar("E")
S = TypeVar("S")

Segment = tuple[RecordBatch, int, int]  # events start..stop-1 of a batch


async def read_more(source: ReplicatedSource[E], merge: ReplicaMerge) -> None:
    """One storage call: a page of each log the merge is waiting for."""
    wanted = merge.wanted()
    excluded = () if wanted is None else wanted
    pages = await source.log.read_new(source.stream_id, merge.known, limit=PAGE, exclude=excluded)
    merge.feed(pages, excluded)


async def _check_not_lost(source: ReplicatedSource[E], missing: list[tuple[str, int]]) -> None:
    """Events are held back, waiting for ``missing`` events: those that
    arrived after their log was read are left for a later query, but one its
    writer's log does not hold at all was acknowledged and lost (a damaged
    or deleted log): CorruptJournalError, never a silent gap. O(replicas)."""
    needed: dict[str, int] = {}
    for replica, sequence in missing:
        needed[replica] = min(sequence, needed.get(replica, sequence))
    for replica, sequence in sorted(needed.items()):
        version = await source.log.replica_version(source.stream_id, replica)
        held = version.get(replica, 0)
        if held < sequence:
            raise CorruptJournalError(
                f"replicated stream {source.stream_id!r}: other replicas' events follow event "
                f"{sequence} of replica {replica!r}, but its log holds only {held} events, so "
                f"they can never be delivered in causal order: acknowledged events of "
                f"{replica!r} were lost (a damaged, deleted or repaired log). Restore that "
                f"log from a backup",
                path="",
                offset=0,
            )


class ReplicatedQuery(Generic[E]):
    """Every replica's events after ``since``, in the deterministic causal
    order, as they are now. Events whose causal past is not readable yet are
    left for a later query. Iterating makes the handle observe what it
    yields; the handle also observes ``since`` (the caller has those events,
    e.g. in a snapshot)."""

    def __init__(
        self,
        source: ReplicatedSource[E],
        since: VersionVector | None,
        policy: UndecodablePolicy = RAISE,
    ) -> None:
        self._source = source
        self._since = since if since is not None else VersionVector()
        self._policy = policy

    async def _delivered(self) -> AsyncIterator[list[Segment]]:
        """The deliverable events, in runs of segments in causal order."""
        source = self._source
        await source.start()
        source.observe(self._since)
        buffer: CausalBuffer[StoredEvent] = CausalBuffer(delivered=self._since)
        merge = ReplicaMerge(self._since.to_dict())
        # The next page is read (in a worker thread) while the caller folds
        # this one: at most one read ahead.
        ahead: asyncio.Task[None] | None = None
        try:
            while True:
                if ahead is not None:
                    await ahead
                    ahead = None
                elif merge.stalled:
                    await read_more(source, merge)
                merged = merge.runs()
                if not merged:
                    if merge.stalled:  # pragma: no cover - a page always moves it on
                        continue
                    if buffer.pending:
                        await _check_not_lost(source, buffer.missing())
                    return  # every log read to its end
                if merge.stalled:
                    ahead = asyncio.ensure_future(read_more(source, merge))
                buffer, released = deliver_page(buffer, merged)
                if released:
                    yield released
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    async def __aiter__(self) -> AsyncIterator[Envelope[E]]:
        source = self._source
        policy = self._policy
        done = 0
        async for released in self._delivered():
            for batch, start, stop in released:
                for index in range(start, stop):
                    try:
                        envelope: Envelope[E] = source.envelope(batch, index)
                    except EventDecodingError as error:
                        if not policy.skip:
                            raise
                        source.observe_next(batch.writer, batch.first_sequence + index)
                        policy.skipped(source.stream_id, batch, index, error)
                        continue
                    source.observe_next(batch.writer, envelope.sequence)
                    yield envelope
                done += stop - start
                if done >= SLICE:  # a consumer that never awaits must not hold the loop
                    done = 0
                    await asyncio.sleep(0)

    async def aggregate(self, update_state: Callable[[S, E], S], init: S) -> S:
        """Fold the events in causal order into a state (without envelopes).
        O(events); memory O(a page per replica log). With a skipping policy it
        folds only the events that can be decoded (and observes them all)."""
        source = self._source
        decode = source.codec.decode
        policy = self._policy
        state = init
        done = 0
        async for released in self._delivered():
            newest: dict[str, int] = {}  # per writer, the last event released
            for batch, start, stop in released:
                if not policy.skip:
                    for name, schema, data in batch.items[start:stop]:
                        state = update_state(state, decode(name, schema, data))
                else:
                    for index in range(start, stop):
                        name, schema, data = batch.items[index]
                        try:
                            event = decode(name, schema, data)
                        except EventDecodingError as error:
                            policy.skipped(source.stream_id, batch, index, error)
                            continue  # observed below all the same
                        state = update_state(state, event)
                newest[batch.writer] = batch.version[batch.writer] + stop - 1
                done += stop - start
                if done >= SLICE:  # other tasks run every SLICE events
                    done = 0
                    source.observe(newest)
                    await asyncio.sleep(0)
            source.observe(newest)  # released in causal order: its past is observed
        return state

    async def to_list(self) -> list[Envelope[E]]:
        return [envelope async for envelope in self]


class ReplicatedLiveQuery(Generic[E]):
    """Catch-up in the deterministic causal order, then every new event from
    any replica, each once its causal past has been yielded. Ends on
    :meth:`close`, on leaving ``async with``, on cancellation, or when the
    app closes (the iteration ends). Events of the writer ``passing`` (the
    replicator's own, which it applied when it wrote them) count as
    delivered without being decoded or yielded."""

    def __init__(
        self,
        source: ReplicatedSource[E],
        since: VersionVector | None,
        policy: UndecodablePolicy = RAISE,
        *,
        passing: str | None = None,
    ) -> None:
        self._source = source
        self._policy = policy
        self._passing = passing  # a writer whose events are delivered, not yielded
        since = since if since is not None else VersionVector()
        self._buffer: CausalBuffer[StoredEvent] = CausalBuffer(delivered=since)
        self._merge = ReplicaMerge(since.to_dict(), skip=passing)
        self._ready: deque[tuple[RecordBatch, int]] = deque()
        self._live = LiveLifecycle(
            source.scope,
            lambda: source.changes.watch(source.stream_id, ignoring=passing),
            source.start,
            self,
        )

    async def __aenter__(self) -> ReplicatedLiveQuery[E]:
        await self._live.watcher()
        return self

    def written(self, last: int) -> None:
        """The ``passing`` writer's log now ends at ``last``: count its events
        up to there as delivered (its log is never read), releasing what
        waited for them. O(replicas) unless events are held back."""
        writer = self._passing
        assert writer is not None, "written() is for a live query with a passing writer"
        buffer = self._buffer
        first = buffer.delivered.get(writer, 0) + 1
        if last < first:
            return
        if not buffer.pending:  # nothing waits for them: just count them
            delivered = buffer.delivered.to_dict()
            delivered[writer] = last
            self._buffer = CausalBuffer(delivered=VersionVector.unchecked(delivered))
            self._source.observe_next(writer, last)
            return
        stand_in = RecordBatch(first, writer, {writer: first}, 0, [()] * (last - first + 1))
        self._buffer, released = deliver_page(self._buffer, [(stand_in, 0, last - first + 1)])
        for batch, start, stop in released:
            if batch.writer == writer:
                self._source.observe_next(writer, batch.first_sequence + stop - 1)
            else:
                self._ready.extend((batch, index) for index in range(start, stop))

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop: a pending ``__anext__`` ends the iteration."""
        await self._live.close()

    aclose = close

    def __aiter__(self) -> ReplicatedLiveQuery[E]:
        return self

    async def _next_run(self) -> bool:
        """Move what the merge can order now, and causal delivery releases,
        to the ready queue; False when the merge must read (or wait) first."""
        merged = self._merge.runs()
        if not merged:
            return False
        await asyncio.sleep(0)  # a page at a time: other tasks run between pages
        self._buffer, released = deliver_page(self._buffer, merged)
        for batch, start, stop in released:
            self._ready.extend((batch, index) for index in range(start, stop))
        return True

    async def __anext__(self) -> Envelope[E]:
        live = self._live
        if live.closed:
            raise StopAsyncIteration
        return await live.step(self._step)

    async def _step(self) -> Envelope[E]:
        live = self._live
        source = self._source
        merge = self._merge
        while True:
            while not self._ready:
                if live.closed:
                    raise StopAsyncIteration
                if await self._next_run():
                    continue
                await live.watcher()  # before reading: no append slips between
                if merge.stalled:
                    async with live.reading():
                        await read_more(source, merge)
                    continue
                await live.wait()
                merge.reopen()
            if live.closed:  # nothing more once closed, buffered or not
                raise StopAsyncIteration
            batch, index = self._ready[0]  # taken off only once decoded (or skipped)
            if batch.writer == self._passing:  # its reader has it already: no decoding
                self._ready.popleft()
                source.observe_next(batch.writer, batch.first_sequence + index)
                continue
            try:
                envelope: Envelope[E] = source.envelope(batch, index)
            except EventDecodingError as error:
                if not self._policy.skip:
                    raise
                self._ready.popleft()
                source.observe(batch.version_at(index))  # delivered, if not yielded
                self._policy.skipped(source.stream_id, batch, index, error)
                continue
            self._ready.popleft()
            source.observe(envelope.version)
            return envelope
