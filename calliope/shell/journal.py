"""``app.journal``: where event streams are obtained."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, overload

from calliope.core.ids import validate_replica_id, validate_stream_id
from calliope.errors import InvalidArgumentError
from calliope.shell.event_stream import EventStream
from calliope.shell.feed import Feed
from calliope.shell.ports import CodecPort, RepairReport, StorePort
from calliope.shell.replicated_stream import ReplicatedEventStream
from calliope.shell.scope import AppScope
from calliope.shell.stream_info import StreamInfo, list_streams

__all__ = ["Journal"]

E = TypeVar("E")


class Journal:
    """Hands out stream handles; handles are cheap and hold no resources."""

    def __init__(
        self,
        store: StorePort,
        codec: CodecPort,
        *,
        replica_id: Callable[[], str],
        clock: Callable[[], Any],
        scope: AppScope,
    ) -> None:
        self._store = store
        self._codec = codec
        self._replica_id = replica_id
        self._clock = clock
        self._scope = scope

    @overload
    def event_stream(self, stream_id: str, event_type: type[E]) -> EventStream[E]: ...

    @overload
    def event_stream(self, stream_id: str, event_type: Any) -> EventStream[Any]: ...

    def event_stream(self, stream_id: str, event_type: Any) -> EventStream[Any]:
        """The plain stream ``stream_id`` of events of ``event_type`` (a class or
        a ``Union`` of classes: the types its events may be decoded into)."""
        validate_stream_id(stream_id)
        return EventStream(
            stream_id,
            event_type,
            log=self._store.plain,
            changes=self._store.changes,
            codec=self._codec.for_type(event_type),
            writer=self._replica_id,
            clock=self._clock,
            scope=self._scope,
        )

    def streams(self, prefix: str | None = None) -> AsyncIterator[StreamInfo]:
        """Every stream of the store whose id starts with ``prefix`` (all for
        None), as :class:`calliope.StreamInfo`: ``async for info in
        app.journal.streams("cart-")``. Streamed: a store of a million
        streams lists in constant memory. Each stream once, in an order
        stable for the store (not sorted); Calliope's own ``$calliope/``
        streams only when ``prefix`` starts with ``"$calliope/"``. O(1)
        storage calls per stream."""
        return list_streams(self._store, self._scope, prefix)

    @overload
    def feed(self, event_type: type[E], prefix: str | None = None) -> Feed[E]: ...

    @overload
    def feed(self, event_type: Any, prefix: str | None = None) -> Feed[Any]: ...

    def feed(self, event_type: Any, prefix: str | None = None) -> Feed[Any]:
        """Every event of ``event_type`` (a class or a Union) in every stream,
        plain or replicated, whose id starts with ``prefix`` (all for None;
        Calliope's own ``$calliope/`` streams only when the prefix asks), in
        one order: each stream's, and causality across replicas. Each
        envelope's ``position`` says where to resume (``query(after=...)``,
        ``live_query(after=...)``); see :mod:`calliope.shell.feed`."""
        if prefix is not None and not isinstance(prefix, str):
            raise InvalidArgumentError(f"prefix must be a str or None, got {prefix!r}")
        return Feed(self._store.feed, self._codec.for_type(event_type), prefix, self._scope)

    async def repair(self, stream_id: str, *, replica_id: str | None = None) -> RepairReport:
        """Make a damaged stream readable and writable again, losing what is
        damaged: the plain stream ``stream_id``, or with ``replica_id`` that
        replica's log of the replicated stream.

        Use it when a query or persist raised ``CorruptJournalError`` and no
        backup or replica can restore the file it names. The log keeps its
        intact prefix (from sequence 1, up to the first damaged batch); the
        rest is moved aside beside it, never deleted (``RepairReport`` lists
        the files), and logged at error level. The events there are lost and
        the stream's next event takes the sequence after the prefix, so
        readers that saw the lost events must be told. On an intact stream
        it does nothing. O(size of the log). Calliope's own streams (a
        replicator key's ``$calliope/crdt/<key>``) are repaired the same way.
        """
        validate_stream_id(stream_id, reserved=True)
        if replica_id is not None:
            validate_replica_id(replica_id)
        self._scope.begin()
        try:
            return await self._store.plain.repair(stream_id, replica_id)
        finally:
            self._scope.end()

    @overload
    def replicated_event_stream(
        self, stream_id: str, event_type: type[E], replica_id: str | None = None
    ) -> ReplicatedEventStream[E]: ...

    @overload
    def replicated_event_stream(
        self, stream_id: str, event_type: Any, replica_id: str | None = None
    ) -> ReplicatedEventStream[Any]: ...

    def replicated_event_stream(
        self, stream_id: str, event_type: Any, replica_id: str | None = None
    ) -> ReplicatedEventStream[Any]:
        """This replica's handle on the replicated stream ``stream_id``.

        ``replica_id`` defaults to the app's. Another id is leased for the
        app's lifetime on first use (two live apps never write as one replica).
        """
        validate_stream_id(stream_id)
        if replica_id is not None:
            validate_replica_id(replica_id)
        replica = replica_id if replica_id is not None else self._replica_id()
        store = self._store

        def lease_if_another() -> Awaitable[None] | None:
            return None if replica == self._replica_id() else store.lease(replica)

        return ReplicatedEventStream(
            stream_id,
            event_type,
            replica,
            log=store.replicated,
            changes=store.changes,
            codec=self._codec.for_type(event_type),
            clock=self._clock,
            scope=self._scope,
            before_first_use=lease_if_another,
        )
