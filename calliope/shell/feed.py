"""``app.journal.feed(event_type, prefix)``: every stream's events, one order.

A feed reads the store's feed port (:class:`calliope.shell.ports.FeedPort`):
every batch of every plain and replicated stream, numbered by the store in
the order batches became visible. So the feed keeps each stream's order and
causality across the replicas of a replicated stream, and each envelope's
``position`` (:class:`calliope.FeedPosition`, the batch's number and the
event's index in it) says where to resume: a reader that resumes *after* a
position gets every later event once, one committed late by a slower
writer included. How each store keeps that promise is said where it is
kept (the file store: ``adapters/files/feed_index.py``; memory: numbering
under the store's lock).

Events whose stored type is not one of ``event_type``'s are passed over
without being decoded; streams the prefix leaves out are passed over
without their events being read. Both queries stream: they hold one page
(``PAGE`` events) at a time, whatever the backlog.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Generic, TypeVar

from calliope.core.envelope import Envelope
from calliope.core.feed_position import FeedPosition, check_after
from calliope.core.version_vector import VersionVector
from calliope.errors import EventDecodingError, InvalidArgumentError
from calliope.shell.live import LiveLifecycle
from calliope.shell.ports import FeedEntry, FeedPage, FeedPort, TypeCodec
from calliope.shell.records import from_timestamp_us
from calliope.shell.scope import AppScope
from calliope.shell.skipped import RAISE, OnSkip, Undecodable, UndecodablePolicy, policy_of

__all__ = ["Feed", "FeedLiveQuery", "FeedQuery", "numbered"]

E = TypeVar("E")

PAGE = 1024
"""Events read per page (and decoded between two chances for other tasks)."""


def numbered(entries: Sequence[FeedEntry]) -> Iterator[tuple[FeedEntry, int]]:
    """Each entry of a feed page, with the index within its feed entry of
    its batch's first event: a position is ``(entry.entry, index + i)`` for
    the batch's event ``i``. A write's batches share one entry number, and
    follow on in the page unless the adapter says where each starts
    (``first_index``). O(1) per entry."""
    entry_number, index = -1, 0
    for entry in entries:
        if entry.entry != entry_number:
            entry_number, index = entry.entry, 0
        if entry.first_index is not None:
            index = entry.first_index
        yield entry, index
        index += len(entry.batch.items)


class _FeedSource:
    """What a feed reads: the port, the codec, the prefix, the app's scope,
    and what to do with an event it cannot decode."""

    def __init__(
        self,
        port: FeedPort,
        codec: TypeCodec[Any],
        prefix: str | None,
        scope: AppScope,
        policy: UndecodablePolicy = RAISE,
    ) -> None:
        self.port = port
        self.codec = codec
        self.names = codec.type_names
        self.prefix = prefix
        self.scope = scope
        self.policy = policy

    async def page(self, start: int, after: FeedPosition | None = None) -> FeedPage:
        """The page from entry ``start``; with ``after`` (a reader's first
        page), InvalidArgumentError if that position is past the feed's end."""
        self.scope.ensure_open()
        self.scope.begin()
        try:
            page = await self.port.read_feed(start, self.prefix, limit=PAGE)
        finally:
            self.scope.end()
        if after is not None and after.entry >= page.end:
            raise InvalidArgumentError(
                f"feed position {after} is past the end of this store's feed (its next entry "
                f"is {page.end}): it comes from another store, or was changed; resume from a "
                f"position this store's feed gave, or from None"
            )
        return page

    def envelopes(
        self, page: FeedPage, after: FeedPosition | None
    ) -> tuple[list[Envelope[Any]], EventDecodingError | None]:
        """The page's events of the feed's types, after ``after``, decoded
        (others are not); with the error of the first event that cannot be
        decoded, if any (then the events before it only; a skipping policy
        leaves such events out instead). O(events of the page)."""
        names, decode = self.names, self.codec.decode
        position_at = FeedPosition.unchecked
        found: list[Envelope[Any]] = []
        for entry, index in numbered(page.entries):
            entry_number = entry.entry
            batch = entry.batch
            skip_to = after.index if after is not None and after.entry == entry_number else -1
            timestamp = from_timestamp_us(batch.timestamp_us)
            writer, first, version = batch.writer, batch.first_sequence, batch.version
            own = version[writer]
            total = sum(version.values())
            for offset, (name, schema, data) in enumerate(batch.items):
                position = index + offset
                if position <= skip_to or name not in names:
                    continue
                try:
                    event = decode(name, schema, data)
                except EventDecodingError as error:
                    if self.policy.skip:
                        self.policy.skipped(entry.stream_id, batch, offset, error)
                        continue
                    where = position_at(entry_number, position)
                    return found, type(error)(
                        f"the event at feed position {where} (stream {entry.stream_id!r}, "
                        f"sequence {first + offset}) cannot be decoded: {error}",
                        position=where,
                    )
                event_version = dict(version)
                event_version[writer] = own + offset
                found.append(
                    Envelope(
                        stream_id=entry.stream_id,
                        replica_id=writer,
                        sequence=first + offset,
                        # Calliope's own checksummed data: no re-validation needed.
                        version=VersionVector.unchecked(event_version, total + offset),
                        timestamp=timestamp,
                        event=event,
                        position=position_at(entry_number, position),
                    )
                )
        return found, None


class Feed(Generic[E]):
    """Every event of ``event_type`` in every stream whose id starts with
    ``prefix``: ``query(after)`` reads what is there, ``live_query(after)``
    goes on with what comes. Cheap; holds no resources."""

    def __init__(
        self, port: FeedPort, codec: TypeCodec[Any], prefix: str | None, scope: AppScope
    ) -> None:
        self._source = _FeedSource(port, codec, prefix, scope)

    def _with(self, undecodable: object, on_skip: object) -> _FeedSource:
        source = self._source
        policy = policy_of(undecodable, on_skip)
        if policy is RAISE:
            return source
        return _FeedSource(source.port, source.codec, source.prefix, source.scope, policy)

    def query(
        self,
        after: FeedPosition | str | None = None,
        *,
        undecodable: Undecodable = "raise",
        on_skip: OnSkip | None = None,
    ) -> FeedQuery[E]:
        """The events after ``after`` (None: from the start) that the feed
        holds when the reader gets there. An event of the feed's types that
        cannot be decoded raises EventDecodingError (its ``position`` says
        where, the events before it are yielded first); with
        ``undecodable="skip"`` it is left out and reported, as a stream's
        query does (:mod:`calliope.shell.skipped`)."""
        return FeedQuery(self._with(undecodable, on_skip), check_after(after))

    def live_query(
        self,
        after: FeedPosition | str | None = None,
        *,
        undecodable: Undecodable = "raise",
        on_skip: OnSkip | None = None,
    ) -> FeedLiveQuery[E]:
        """The events after ``after``, then each new one, until closed: use
        as ``async with feed.live_query(after) as live: async for e in live``.
        ``undecodable`` and ``on_skip`` as for :meth:`query`."""
        return FeedLiveQuery(self._with(undecodable, on_skip), check_after(after))


def _start(after: FeedPosition | None) -> int:
    return 0 if after is None else after.entry


class FeedQuery(Generic[E]):
    """The feed's events after a position, as they stand. Iterate it; each
    iteration reads again. O(entries after the position); memory O(PAGE)."""

    def __init__(self, source: _FeedSource, after: FeedPosition | None) -> None:
        self._source = source
        self._after = after

    async def __aiter__(self) -> AsyncIterator[Envelope[E]]:
        source = self._source
        start, after = _start(self._after), self._after
        page = await source.page(start, after)
        following: asyncio.Future[FeedPage] | None = None
        try:
            while True:
                if page.more:  # the next page is read while this one is decoded
                    following = asyncio.ensure_future(source.page(page.next_entry))
                envelopes, failure = source.envelopes(page, after)
                for envelope in envelopes:
                    yield envelope
                if failure is not None:
                    raise failure
                after = None
                if following is None:
                    return
                page, following = await following, None
                await asyncio.sleep(0)  # a long backlog never holds the loop
        finally:
            if following is not None:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)

    async def to_list(self) -> list[Envelope[E]]:
        """Every envelope of the query (for short feeds)."""
        return [envelope async for envelope in self]


class FeedLiveQuery(Generic[E]):
    """The feed after a position, then every new event, until closed.

    It ends on :meth:`close` (from any task), on leaving the ``async with``,
    or when the app closes; it leaves no task behind. ``position`` is the
    position of the last event it yielded (``after`` before the first): save
    it to resume there. A step that raised (an event that cannot be decoded,
    a failed read) raises again on every later step until closed.
    """

    def __init__(self, source: _FeedSource, after: FeedPosition | None) -> None:
        self._source = source
        self._after = after
        self._next_entry = _start(after)
        self._buffer: deque[Envelope[E]] = deque()
        self._position = after
        self._failure: EventDecodingError | None = None
        self._unchecked = after  # checked against the feed's end on the first read

        async def check_open() -> None:
            source.scope.ensure_open()

        self._live = LiveLifecycle(source.scope, source.port.watch_feed, check_open, self)

    @property
    def position(self) -> FeedPosition | None:
        """Where the last yielded event sits (resume after it)."""
        return self._position

    @property
    def buffered(self) -> int:
        """Events read and not yet yielded (0: the next one needs a read)."""
        return len(self._buffer)

    async def __aenter__(self) -> FeedLiveQuery[E]:
        await self._live.watcher()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop: a pending ``__anext__`` ends the iteration."""
        await self._live.close()

    aclose = close

    def __aiter__(self) -> FeedLiveQuery[E]:
        return self

    async def __anext__(self) -> Envelope[E]:
        if self._live.closed:
            raise StopAsyncIteration
        return await self._live.step(self._step)

    async def _step(self) -> Envelope[E]:
        live = self._live
        while not self._buffer:
            if live.closed:
                raise StopAsyncIteration
            await live.watcher()  # before reading: no append slips between
            if self._failure is not None:  # raised once what came before it was yielded
                raise self._failure
            async with live.reading():
                page = await self._source.page(self._next_entry, self._unchecked)
            self._unchecked = None
            envelopes, self._failure = self._source.envelopes(page, self._after)
            self._buffer.extend(envelopes)
            if self._failure is not None:
                continue
            if page.next_entry != self._next_entry:
                self._after = None  # (past the entry it named)
            self._next_entry = page.next_entry
            if page.more:
                await asyncio.sleep(0)
            elif not self._buffer:
                await live.wait()
        if live.closed:
            raise StopAsyncIteration
        envelope = self._buffer.popleft()
        self._position = envelope.position
        return envelope
