"""The object ``calliope.open()`` returns: everything hangs off it."""

from __future__ import annotations

import asyncio
import datetime
import os
from collections.abc import Callable
from typing import Any, TypeVar

from calliope.core.ids import validate_replica_id
from calliope.errors import AppClosedError, InvalidArgumentError
from calliope.shell.journal import Journal
from calliope.shell.ports import CodecPort, Durability, StorePort
from calliope.shell.projection import Projection
from calliope.shell.replicator import Replicator
from calliope.shell.scope import AppScope
from calliope.shell.snapshot_store import SnapshotStore

__all__ = ["App", "utc_now"]

S = TypeVar("S")
E = TypeVar("E")


def utc_now() -> datetime.datetime:
    """The wall clock, in UTC: the default clock of an app."""
    return datetime.datetime.now(datetime.UTC)


class App:
    """An opened Calliope store: ``journal``, ``snapshots``, ``replicator``,
    ``projection()``, ``replica_id``.

    Use ``async with calliope.open(...) as app``. Leaving the block (or
    :meth:`aclose`) refuses new work, lets persists already in flight
    complete, ends every live query (a consumer blocked in one sees its
    iteration end), then releases files, locks, tasks and the replica id.
    Using the app (or a handle from it) after that raises
    :class:`calliope.AppClosedError`. The constructor does no I/O.
    """

    def __init__(
        self,
        store: StorePort,
        codec: CodecPort,
        *,
        target: str,
        clock: Callable[[], datetime.datetime] = utc_now,
        heartbeat_interval: float = 1.0,
        failure_timeout: float = 10.0,
        poll_interval: float = 0.01,
    ) -> None:
        self._store = store
        self._codec = codec
        self._target = target
        self._clock = clock
        self._scope = AppScope(target)
        self._closing: asyncio.Future[None] | None = None
        checked = checked_clock(clock)
        self.journal = Journal(
            store,
            codec,
            replica_id=lambda: store.replica_id,
            clock=checked,
            scope=self._scope,
        )
        self.snapshots = SnapshotStore(
            store.snapshots, codec, checked, self._scope, plain=store.plain
        )
        self._checked_clock = checked
        self.replicator = Replicator(
            store,
            codec,
            clock=checked,
            scope=self._scope,
            heartbeat_interval=heartbeat_interval,
            failure_timeout=failure_timeout,
            poll_interval=poll_interval,
        )

    def __repr__(self) -> str:
        return f"<calliope.App {self._target} replica={self._store_replica()} {self._scope.state}>"

    def _store_replica(self) -> str | None:
        return self._store.replica_id if self._scope.state == "open" else None

    @property
    def replica_id(self) -> str:
        """This app's replica id (given to ``open`` or the store's default)."""
        self._scope.ensure_open()
        return self._store.replica_id

    def projection(
        self,
        name: str,
        event_type: type[E] | Any,
        update_state: Callable[[S, Any], S],
        init: S,
        *,
        prefix: str | None = None,
        envelopes: bool = False,
    ) -> Projection[S, Any]:
        """A read model named ``name``: ``update_state(state, event)`` folded
        over ``app.journal.feed(event_type, prefix)`` from ``init``, its
        state and feed position saved together (``catch_up()``,
        ``follow()``; see :mod:`calliope.shell.projection`). With
        ``envelopes=True``, ``update_state`` gets each envelope (stream id,
        sequence, position) instead of the bare event. The state's class is
        stored like a snapshot's (an attrs class named with
        ``@calliope.event_type``, or plain data)."""
        return Projection(
            name,
            self.journal.feed(event_type, prefix),
            update_state,
            init,
            snapshots=self._store.snapshots,
            state_codec=self._codec.for_type(type(init)),
            clock=self._checked_clock,
            scope=self._scope,
            envelopes=envelopes,
        )

    @property
    def codec(self) -> CodecPort:
        """The app's codec (its cattrs converter takes custom hooks)."""
        return self._codec

    async def __aenter__(self) -> App:
        if self._scope.state != "new":
            raise AppClosedError("an app can be entered once; call calliope.open() again")
        self._scope.state = "opening"
        try:
            await self._store.open()
        except BaseException:
            # Failed or cancelled part-way: the store releases what it took.
            self._scope.state = "closed"
            await asyncio.shield(self._store.aclose())
            raise
        if self._scope.state != "opening":  # closed while it was opening
            await asyncio.shield(self._store.aclose())
            raise AppClosedError(f"the app on {self._target} was closed while it opened")
        self._scope.state = "open"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Let in-flight persists complete, end live queries, release every
        resource. Idempotent; concurrent calls all return once it is done, and
        cancelling one caller does not stop the close."""
        if self._closing is None:
            if self._scope.state in ("closed", "new", "opening"):
                self._scope.state = "closed"
                return
            self._scope.state = "closing"  # from now on, new work is refused
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        try:
            await self._scope.close()
        finally:
            self._scope.state = "closed"
            await self._store.aclose()


def checked_clock(clock: Callable[[], object]) -> Callable[[], datetime.datetime]:
    """``clock`` made to return an aware UTC datetime: an aware one in
    another zone is converted to UTC; a naive datetime or anything else
    raises InvalidArgumentError (at its first use, before anything is
    written), saying what a clock must return."""

    def now() -> datetime.datetime:
        moment = clock()
        if isinstance(moment, datetime.datetime):
            if moment.tzinfo is datetime.UTC:  # the usual case
                return moment
            if moment.utcoffset() is not None:
                return moment.astimezone(datetime.UTC)
        what = "a naive datetime" if isinstance(moment, datetime.datetime) else repr(moment)
        raise InvalidArgumentError(
            f"the app's clock returned {what}; a clock must return an aware UTC datetime, "
            f"e.g. datetime.datetime.now(datetime.timezone.utc)"
        )

    return now


def check_options(
    durability: object,
    segment_bytes: object,
    poll_interval: object,
    heartbeat_interval: object = 1.0,
    failure_timeout: object = 10.0,
) -> None:
    if durability not in ("fsync", "flush"):
        raise InvalidArgumentError(f'durability must be "fsync" or "flush", got {durability!r}')
    if not isinstance(segment_bytes, int) or segment_bytes < 4096:
        raise InvalidArgumentError(f"segment_bytes must be an int >= 4096, got {segment_bytes!r}")
    if (
        not isinstance(poll_interval, int | float)
        or isinstance(poll_interval, bool)
        or not 0 < poll_interval <= 60
    ):
        raise InvalidArgumentError(
            f"poll_interval must be seconds in (0, 60], got {poll_interval!r}"
        )
    for name, seconds in (
        ("heartbeat_interval", heartbeat_interval),
        ("failure_timeout", failure_timeout),
    ):
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not 0.01 <= seconds <= 3600
        ):
            raise InvalidArgumentError(f"{name} must be seconds in [0.01, 3600], got {seconds!r}")
    if failure_timeout <= heartbeat_interval:  # type: ignore[operator]
        raise InvalidArgumentError(
            f"failure_timeout ({failure_timeout}s) must be longer than heartbeat_interval "
            f"({heartbeat_interval}s), or live replicas would be taken for failed; "
            f"a few heartbeats long is usual"
        )


def open_app(
    target: str | os.PathLike[str],
    *,
    replica_id: str | None = None,
    durability: Durability = "fsync",
    segment_bytes: int = 64 * 1024 * 1024,
    poll_interval: float = 0.01,
    clock: Callable[[], datetime.datetime] = utc_now,
    read_only: bool = False,
    heartbeat_interval: float = 1.0,
    failure_timeout: float = 10.0,
    schema: str | None = None,
) -> App:
    """Open a store; use as ``async with calliope.open(target) as app``.

    ``target`` is a directory path (the embedded file store, created if
    missing, 0700), ``"memory://name"`` (in this process; apps opened with
    the same name share it), or ``"postgresql://..."``.

    * ``replica_id``: this app's replica id; default: the store's own,
      created once and kept. Two live apps may not share one on one store.
      A directory is made a store only if it is new or empty (StorageError
      otherwise). If a store's ``calliope.json`` was lost, ``open`` refuses
      it (StorageError naming the replica ids that used it) unless
      ``replica_id`` is one of those ids: ``calliope.json`` is then recreated
      with it as the default.
    * ``durability``: ``"fsync"`` (default: a write is on disk when
      ``persist`` returns) or ``"flush"`` (handed to the OS: survives a
      process crash, not a power loss).
    * ``segment_bytes``: file store segment size before rolling to a new file.
    * ``poll_interval``: how often (seconds) a live query looks for events
      written by other processes.
    * ``clock``: returns the current time as an aware datetime (for tests);
      converted to UTC. A naive one raises InvalidArgumentError at first use.
    * ``read_only``: inspect an existing store without writing to it (e.g. a
      backup mounted read-only): no replica lease is taken and nothing is
      created (a missing store is a StorageError); queries, live queries and
      snapshot loads work, and every write raises
      :class:`calliope.ReadOnlyStoreError`.
    * ``heartbeat_interval``: how often (seconds) this app's replicator
      records that it is alive, once it is used.
    * ``failure_timeout``: a replica silent this long (seconds) is taken for
      failed: it no longer counts for ``replicas=n`` nor holds back CRDT
      compaction (it catches up when it returns). Must exceed
      ``heartbeat_interval``.
    * ``schema``: for PostgreSQL, the schema that holds the store (default
      ``"calliope"``; created on first open); ``?schema=name`` in the target
      says the same.

    The constructor does no I/O: the store is opened on ``async with``.
    """
    from calliope.shell.targets import store_for

    if replica_id is not None:
        validate_replica_id(replica_id)
    check_options(durability, segment_bytes, poll_interval, heartbeat_interval, failure_timeout)
    if not callable(clock):
        raise InvalidArgumentError(
            f"clock must be a function returning an aware UTC datetime, got {clock!r}"
        )
    if not isinstance(read_only, bool):
        raise InvalidArgumentError(f"read_only must be True or False, got {read_only!r}")
    store, codec, name = store_for(
        target,
        replica_id=replica_id,
        durability=durability,
        segment_bytes=segment_bytes,
        poll_interval=poll_interval,
        read_only=read_only,
        schema=schema,
    )
    return App(
        store,
        codec,
        target=name,
        clock=clock,
        heartbeat_interval=heartbeat_interval,
        failure_timeout=failure_timeout,
        poll_interval=poll_interval,
    )
