"""Finite queries and live queries over one stream.

A :class:`Query` replays a range of a stream once; a :class:`LiveQuery`
replays from a sequence, then keeps yielding events as they are persisted
(by this process at once, by others as soon as the adapter notices). Both
stream: they hold one batch of records at a time, however long the stream.

A live query never misses an event between catching up and waiting: it
takes its watcher *before* reading, so an append during the read wakes the
following wait at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

from calliope.core.envelope import Envelope
from calliope.errors import EventDecodingError, InvalidArgumentError
from calliope.shell.live import LiveLifecycle
from calliope.shell.ports import ChangesPort, PlainLogPort, RecordBatch, TypeCodec
from calliope.shell.records import envelopes_of
from calliope.shell.scope import AppScope
from calliope.shell.skipped import RAISE, UndecodablePolicy

__all__ = ["LiveQuery", "Query", "StreamSource"]

E = TypeVar("E")
S = TypeVar("S")


class StreamSource:
    """What a query reads: one stream's log and codec, and the app's scope."""

    def __init__(
        self,
        stream_id: str,
        log: PlainLogPort,
        changes: ChangesPort,
        codec: TypeCodec[Any],
        scope: AppScope,
    ) -> None:
        self.stream_id = stream_id
        self.log = log
        self.changes = changes
        self.codec = codec
        self.scope = scope

    def envelopes(
        self, batch: RecordBatch, policy: UndecodablePolicy = RAISE
    ) -> list[Envelope[Any]]:
        """The batch's events, decoded. An event that cannot be decoded raises
        EventDecodingError, or with a skipping ``policy`` is left out and
        reported. O(events)."""
        decode = self.codec.decode
        if not policy.skip:
            events = [decode(name, version, data) for name, version, data in batch.items]
            return envelopes_of(self.stream_id, batch, events)
        decoded: list[Any] = []
        failed: dict[int, EventDecodingError] = {}
        for index, (name, version, data) in enumerate(batch.items):
            try:
                decoded.append(decode(name, version, data))
            except EventDecodingError as error:
                decoded.append(None)
                failed[index] = error
        envelopes = envelopes_of(self.stream_id, batch, decoded)
        if not failed:
            return envelopes
        for index, problem in failed.items():
            policy.skipped(self.stream_id, batch, index, problem)
        return [envelope for index, envelope in enumerate(envelopes) if index not in failed]


SLICE = 1024
"""Events decoded (or folded) between two chances for other tasks to run."""


def slices(batches: list[RecordBatch]) -> Iterator[RecordBatch]:
    """The batches, a large one cut into parts of at most ``SLICE`` events:
    work per part is bounded, so the event loop is never held for long."""
    for batch in batches:
        count = len(batch.items)
        if count <= SLICE:
            yield batch
            continue
        first = batch.first_sequence
        for start in range(first, first + count, SLICE):
            part = batch.sliced(start, start + SLICE - 1)
            if part is not None:
                yield part


def _check_sequence(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class Query(Generic[E]):
    """Events ``from_sequence..to_sequence`` (inclusive) as they are now.

    Iterate it (``async for envelope in query``) or fold it with
    :meth:`aggregate`. Each iteration reads the stream again. An event that
    cannot be decoded raises EventDecodingError, or with a skipping
    ``policy`` is left out and reported (see :mod:`calliope.shell.skipped`).
    """

    def __init__(
        self,
        source: StreamSource,
        from_sequence: int,
        to_sequence: int | None,
        policy: UndecodablePolicy = RAISE,
    ) -> None:
        self._source = source
        self._from = _check_sequence("from_sequence", from_sequence, 1)
        self._to = None if to_sequence is None else _check_sequence("to_sequence", to_sequence, 0)
        self._policy = policy

    async def _batches(self) -> AsyncIterator[list[RecordBatch]]:
        self._source.scope.ensure_open()
        if self._to is not None and self._to < self._from:
            return
        async for batch in self._source.log.read(self._source.stream_id, self._from, self._to):
            yield batch

    async def __aiter__(self) -> AsyncIterator[Envelope[E]]:
        done = 0
        async for batches in self._batches():
            for part in slices(batches):
                for envelope in self._source.envelopes(part, self._policy):
                    yield envelope
                done += len(part.items)
                if done >= SLICE:  # a consumer that never awaits must not hold the loop
                    done = 0
                    await asyncio.sleep(0)

    async def aggregate(self, update_state: Callable[[S, E], S], init: S) -> S:
        """Fold the events (not envelopes) into a state, like
        :func:`calliope.aggregate`, without building envelopes. O(events);
        other tasks run every ``SLICE`` events. With a skipping policy it folds
        only the events that can be decoded."""
        source, policy = self._source, self._policy
        decode = source.codec.decode
        state = init
        async for batches in self._batches():
            for part in slices(batches):
                if policy.skip:
                    for index, (name, version, data) in enumerate(part.items):
                        try:
                            event = decode(name, version, data)
                        except EventDecodingError as error:
                            policy.skipped(source.stream_id, part, index, error)
                            continue
                        state = update_state(state, event)
                else:
                    for name, version, data in part.items:
                        state = update_state(state, decode(name, version, data))
                await asyncio.sleep(0)
        return state

    async def to_list(self) -> list[Envelope[E]]:
        """All envelopes of the query, in order (for short ranges)."""
        return [envelope async for envelope in self]


class LiveQuery(Generic[E]):
    """Catch-up from ``from_sequence``, then every new event, until closed.

    Use as ``async with stream.live_query() as live: async for e in live``.
    It ends on :meth:`close` (from any task), on leaving the ``async with``,
    when the iterating task is cancelled, or when the app closes (the
    iteration ends); it leaves no task behind. Once a step raised (an event
    that cannot be decoded, a failed read), every later one raises that
    error again until closed; ``next_sequence`` then names the first event
    of the part it could not yield.
    """

    def __init__(
        self, source: StreamSource, from_sequence: int, policy: UndecodablePolicy = RAISE
    ) -> None:
        self._source = source
        self._policy = policy
        self._next = _check_sequence("from_sequence", from_sequence, 1)
        self._buffer: deque[Envelope[E]] = deque()
        self._parts: deque[RecordBatch] = deque()  # read, not yet decoded
        self._reader: AsyncIterator[list[RecordBatch]] | None = None

        async def check_open() -> None:
            source.scope.ensure_open()

        self._live = LiveLifecycle(
            source.scope, lambda: source.changes.watch(source.stream_id), check_open, self
        )

    @property
    def next_sequence(self) -> int:
        """The sequence of the next event this live query will yield."""
        return self._next - len(self._buffer) - sum(len(part.items) for part in self._parts)

    async def __aenter__(self) -> LiveQuery[E]:
        await self._live.watcher()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop: a pending ``__anext__`` ends the iteration."""
        await self._live.close()  # waits for a read step in progress
        await self._drop_reader()

    aclose = close

    async def _drop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.aclose()  # type: ignore[attr-defined]

    def __aiter__(self) -> LiveQuery[E]:
        return self

    async def __anext__(self) -> Envelope[E]:
        live = self._live
        if live.closed:
            await self._drop_reader()
            raise StopAsyncIteration
        return await live.step(self._step)

    async def _step(self) -> Envelope[E]:
        live = self._live
        while not self._buffer:
            if live.closed:
                await self._drop_reader()
                raise StopAsyncIteration
            if self._parts:  # decoded a part at a time: the loop is never held for long
                await asyncio.sleep(0)  # (a consumer that never awaits would hold it)
                # Taken off only once decoded: next_sequence stays honest on failure.
                self._buffer.extend(self._source.envelopes(self._parts[0], self._policy))
                self._parts.popleft()
                continue
            await live.watcher()  # before reading: no append slips between
            if self._reader is None:
                self._reader = aiter(
                    self._source.log.read(self._source.stream_id, self._next, None)
                )
            async with live.reading():
                batches = await anext(self._reader, None)
            if batches is not None:
                self._parts.extend(slices(batches))
                self._next = batches[-1].last_sequence + 1
                continue
            self._reader = None
            await live.wait()
        if live.closed:  # nothing more once closed, buffered or not
            await self._drop_reader()
            raise StopAsyncIteration
        return self._buffer.popleft()
