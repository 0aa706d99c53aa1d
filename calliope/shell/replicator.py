"""``app.replicator``: operation-based CRDTs replicated through the journal.

Every app that opens the same store holds a replica of each key it uses.
A key's operations are kept in one replicated stream (one log per replica)
and applied by every replica in causal order; see :mod:`.crdt_key` for how a
key moves and :mod:`.crdt_progress` for replica counts, stability and CRDT
snapshots. Any CRDT works: the nine built-in ones (nested ones in an
``ORMap`` included) and a user's own that passes
``calliope.testing.check_crdt``; it is stored under its type name
(``crdt_name``, else the class name).

Tasks the replicator starts (each key's follower and reporter, the
heartbeat) belong to it, and it belongs to the app: closing the app ends
them, records each key's final progress and snapshot, and wakes everyone
waiting (``updates()`` iterations end; a wait for replicas raises
:class:`calliope.AppClosedError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import attrs

from calliope.core.ids import MAX_ID_BYTES, RESERVED_PREFIX, validate_stream_id
from calliope.core.version_vector import VersionVector
from calliope.errors import (
    InvalidArgumentError,
    InvalidStreamIdError,
    ReadOnlyStoreError,
    WaitTimeout,
    WrongCRDTTypeError,
)
from calliope.shell.crdt_key import CRDTKey
from calliope.shell.crdt_progress import KeyProgress
from calliope.shell.crdt_storage import KeyStorage
from calliope.shell.heartbeat import Liveness
from calliope.shell.key_deleted import DELETED
from calliope.shell.ports import CodecPort, NewEvent, StorePort
from calliope.shell.records import from_timestamp_us, to_timestamp_us
from calliope.shell.replicated_source import ReplicatedSource
from calliope.shell.scope import AppScope

__all__ = ["KEY_PREFIX", "ReplicaStatus", "Replicator", "Updates"]

C = TypeVar("C")

KEY_PREFIX = f"{RESERVED_PREFIX}crdt/"
"""A key ``k``'s operations live in the replicated stream ``KEY_PREFIX + k``."""


@attrs.frozen
class ReplicaStatus:
    """One replica as ``app.replicator.replicas()`` sees it.

    ``live``: its heartbeat is running and younger than the failure timeout.
    ``heartbeat``: when it last beat (None if it never did). ``delivered``:
    what it last reported having applied of the key asked about (None
    without a key, or if it reported nothing on it).
    """

    replica_id: str
    live: bool
    heartbeat: datetime.datetime | None
    delivered: VersionVector | None = None


@attrs.frozen
class _Held:
    key: CRDTKey
    progress: KeyProgress


class Replicator:
    """``app.replicator``: get, update, updates, wait_until, delete, replicas."""

    def __init__(
        self,
        store: StorePort,
        codec: CodecPort,
        *,
        clock: Callable[[], Any],
        scope: AppScope,
        heartbeat_interval: float,
        failure_timeout: float,
        poll_interval: float,
    ) -> None:
        self._store = store
        self._codec = codec
        self._clock = clock
        self._scope = scope
        self._heartbeat_interval = heartbeat_interval
        self._failure_timeout = failure_timeout
        self._poll_interval = poll_interval
        self._keys: dict[str, _Held] = {}
        self._liveness: Liveness | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"<calliope.Replicator keys={len(self._keys)}>"

    # -- keys -----------------------------------------------------------------

    def _liveness_of(self) -> Liveness:
        if self._liveness is None:
            self._liveness = Liveness(
                self._store.progress,
                self._store.replica_id,
                self._clock,
                heartbeat_interval=self._heartbeat_interval,
                failure_timeout=self._failure_timeout,
                poll_interval=self._poll_interval,
            )
            self._scope.adopt(self)  # closed with the app
        return self._liveness

    async def _held(self, key: str, crdt_type: type) -> _Held:
        """This replica's started key (created on first use). O(1) once started."""
        held = self._keys.get(key) if type(key) is str else None
        if held is not None and held.key.started and held.key.crdt_type is crdt_type:
            self._scope.ensure_open()
            return held
        stream_id = _stream_id(key)
        _check_crdt_type(crdt_type)
        self._scope.begin()  # close waits for a start in progress
        try:
            held = self._keys.get(key)
            if held is not None and held.key.crdt_type is not crdt_type and not held.key.started:
                # Another type's first use is starting: its claim decides.
                with contextlib.suppress(Exception):
                    await held.key.start()
                held = self._keys.get(key)
            if held is None:
                held = self._create(key, stream_id, crdt_type)
            elif held.key.crdt_type is not crdt_type:
                raise WrongCRDTTypeError(
                    f"replicator key {key!r} is used as a {held.key.crdt_type.__qualname__} "
                    f"here, not a {crdt_type.__qualname__}; a key has one CRDT type for its "
                    f"whole life: use that type, or another key"
                )
            await self._liveness_of().start()
            try:
                await held.key.start()
            except BaseException:
                if self._keys.get(key) is held and not held.key.started:
                    del self._keys[key]  # a later call starts afresh
                raise
            held.progress.start()
            return held
        finally:
            self._scope.end()

    def _create(self, key: str, stream_id: str, crdt_type: type) -> _Held:
        store = self._store
        replica_id = store.replica_id
        codec = self._codec.for_crdt(crdt_type)
        source: ReplicatedSource[Any] = ReplicatedSource(
            stream_id, replica_id, store.replicated, store.changes, codec, self._scope, _nothing
        )
        storage = KeyStorage(
            key,
            stream_id,
            replica_id,
            snapshots=store.snapshots,
            progress=store.progress,
            codec=codec,
            clock=self._clock,
        )
        progress: list[KeyProgress] = []
        crdt_key = CRDTKey(
            key,
            crdt_type,
            source=source,
            codec=codec,
            storage=storage,
            clock=self._clock,
            on_progress=lambda: progress[0].touched(),
            before_round=lambda: progress[0].catch_up_with_reports(),
            after_round=lambda: progress[0].wrote(),
        )
        progress.append(
            KeyProgress(crdt_key, self._liveness_of(), poll_interval=self._poll_interval)
        )
        held = _Held(crdt_key, progress[0])
        self._keys[key] = held
        return held

    # -- the API --------------------------------------------------------------

    async def get(
        self, key: str, crdt_type: type[C], *, replicas: int = 1, timeout: float | None = None
    ) -> C:
        """The key's state here, once it includes everything at least
        ``replicas`` replicas (this one counted) have applied, by their last
        progress reports: with the default, everything any replica reported,
        so an update that returned anywhere is included.

        With fewer replicas reporting on the key, or this replica not caught up
        with them within ``timeout`` seconds (None: no limit), raises
        :class:`calliope.ReplicationTimeout`. A new key reads as the empty
        state. O(replicas) reads of progress, at most once per poll interval.
        """
        _check_count(replicas, timeout)
        held = await self._held(key, crdt_type)
        held.key.check()
        if replicas > 1 or len(await held.progress.reports(force=True)) > 1:
            await held.progress.wait_read_floor(replicas, timeout)
        held.key.check()
        state: C = held.key.state
        return state

    async def update(
        self,
        key: str,
        crdt_type: type[C],
        prepare: Callable[[C], object],
        *,
        replicas: int = 1,
        timeout: float | None = None,
    ) -> C:
        """Apply ``prepare(state)``'s operation(s) to the key, durably, and
        return the state right after them.

        ``prepare`` gets this replica's state, caught up with every update
        that returned anywhere before the call, and returns one operation or
        several (from the state's methods, e.g. ``lambda counter:
        counter.increment(5)``). Concurrent updates share one write. An
        empty list writes nothing and returns the state. Returns once
        ``replicas`` replicas (this one counted)
        have applied the operations; not within ``timeout`` seconds:
        :class:`calliope.ReplicationTimeout`, and the operations, durable
        already, spread later. If ``prepare`` raises, or returns something
        that is not an operation of ``crdt_type`` (or would not be stored
        exactly), that error is raised and nothing is written.
        """
        if not callable(prepare):
            raise InvalidArgumentError(
                f"prepare must be a function from the state to operation(s), got {prepare!r}; "
                f"e.g. lambda counter: counter.increment(5)"
            )
        _check_count(replicas, timeout)
        held = await self._held(key, crdt_type)
        liveness = self._liveness_of()
        if liveness.stale() and not liveness.read_only:  # taken for failed? catch up first
            await held.key.caught_up()
            await liveness.beat()
        self._scope.begin()
        try:
            state, dot = await held.key.update(prepare)
        finally:
            self._scope.end()
        if replicas > 1 and dot is not None:
            await held.progress.wait_acknowledged(dot, replicas, timeout)
        result: C = state
        return result

    def updates(self, key: str, crdt_type: type[C]) -> Updates[C]:
        """The key's new states, after each local or remote change: ``async
        with app.replicator.updates(key, Type) as changes: async for state in
        changes``. A slow consumer gets the latest state (states in between
        are skipped, memory stays flat). Ends when the app closes."""
        _stream_id(key)
        _check_crdt_type(crdt_type)
        return Updates(self, key, crdt_type)

    async def wait_until(
        self,
        key: str,
        crdt_type: type[C],
        predicate: Callable[[C], bool],
        *,
        timeout: float | None = None,
    ) -> C:
        """The first state of the key (the current one included) for which
        ``predicate`` is true. Not within ``timeout`` seconds:
        :class:`calliope.WaitTimeout`."""
        if not callable(predicate):
            raise InvalidArgumentError(
                f"predicate must be a function from the state to bool, got {predicate!r}"
            )
        _check_count(1, timeout)
        held = await self._held(key, crdt_type)
        crdt_key = held.key
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            crdt_key.check()
            seen = crdt_key.changed.generation
            state: C = crdt_key.state
            if predicate(state):
                return state
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(
                    f"the state of {key!r} did not satisfy the predicate within {timeout}s "
                    f"(it is {_value_of(state)!r}); wait longer, or check the predicate"
                )
            await crdt_key.changed.wait(seen, remaining)

    async def delete(self, key: str) -> None:
        """Delete ``key`` on every replica, for good.

        A delete marker is written to the key's log; each replica that
        applies it treats the key as deleted: ``get``, ``update`` and
        ``wait_until`` raise :class:`calliope.KeyDeletedError`, an
        ``updates()`` iteration raises it too. The delete wins over every
        update, concurrent ones included: an update written before a replica
        saw the delete stays durable but is never read again. The key's name
        cannot be reused."""
        stream_id = _stream_id(key)
        held = self._keys.get(key)
        if held is not None:
            await self._held(key, held.key.crdt_type)
            self._scope.begin()
            try:
                await held.key.update(lambda _: DELETED)
            finally:
                self._scope.end()
            return
        self._scope.begin()
        try:
            store = self._store
            own = store.replica_id
            stored = await store.replicated.append_replica(
                stream_id,
                own,
                [NewEvent(DELETED.name, 1, None)],
                observed={},
                timestamp_us=to_timestamp_us(self._clock()),
            )
            if stored is not None:  # report it: every replica's next round catches up to it
                reported = {own: stored.first_sequence}
                for record in await store.progress.reports(key):
                    if record.replica_id == own:
                        reported = {**record.delivered, **reported}
                with contextlib.suppress(ReadOnlyStoreError):
                    await store.progress.report(
                        key, own, reported, timestamp_us=to_timestamp_us(self._clock())
                    )
        finally:
            self._scope.end()

    async def replicas(self, key: str | None = None) -> list[ReplicaStatus]:
        """Every replica known by a heartbeat (or, with ``key``, a progress
        report on it): whether it is live, its last heartbeat, and with
        ``key`` what it reported having applied. O(replicas)."""
        if key is not None:
            _stream_id(key)
        self._scope.begin()
        try:
            liveness = self._liveness_of()
            live = await liveness.live(force=True)
            beats = dict(liveness.last)
            delivered: dict[str, VersionVector] = {}
            if key is not None:
                for record in await self._store.progress.reports(key):
                    delivered[record.replica_id] = VersionVector(record.delivered)
        finally:
            self._scope.end()
        statuses = []
        for replica in sorted({*beats, *delivered}):
            beat = beats.get(replica)
            statuses.append(
                ReplicaStatus(
                    replica_id=replica,
                    live=replica in live,
                    heartbeat=None if beat is None else from_timestamp_us(beat[0]),
                    delivered=delivered.get(replica),
                )
            )
        return statuses

    # -- close ----------------------------------------------------------------

    async def close(self) -> None:
        """End every key's tasks, record final progress and snapshots, stop
        the heartbeat. Called by the app's close, after updates in flight."""
        if self._closing:
            return
        self._closing = True

        async def stop(held: _Held) -> None:
            await held.key.stop()
            await held.progress.stop()

        await asyncio.gather(*(stop(held) for held in list(self._keys.values())))
        if self._liveness is not None:
            await self._liveness.stop()


class Updates(AsyncIterator[C]):
    """The iteration ``app.replicator.updates(key, Type)`` returns (see there)."""

    def __init__(self, replicator: Replicator, key: str, crdt_type: type[C]) -> None:
        self._replicator = replicator
        self._key = key
        self._crdt_type = crdt_type
        self._held: _Held | None = None
        self._seen = 0
        self._closed = False

    async def __aenter__(self) -> Updates[C]:
        held = await self._replicator._held(self._key, self._crdt_type)
        self._held = held
        self._seen = held.key.changed.generation
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True

    def __aiter__(self) -> Updates[C]:
        return self

    async def __anext__(self) -> C:
        if self._held is None:
            raise InvalidArgumentError(
                "use updates() as `async with app.replicator.updates(key, Type) as changes:`"
            )
        crdt_key = self._held.key
        while True:
            if self._closed or crdt_key.changed.closed:
                raise StopAsyncIteration
            crdt_key.check()
            generation = crdt_key.changed.generation
            if generation != self._seen:
                self._seen = generation
                state: C = crdt_key.state
                return state
            await crdt_key.changed.wait(generation)


def _nothing() -> None:
    return None


def _stream_id(key: object) -> str:
    """The stream id of a replicator key, validating the key."""
    validate_stream_id(key, kind="replicator key")
    stream_id = KEY_PREFIX + str(key)
    if len(stream_id.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidStreamIdError(
            f"a replicator key may be at most {MAX_ID_BYTES - len(KEY_PREFIX)} UTF-8 bytes, "
            f"this one is {len(str(key).encode('utf-8'))}; use a shorter key"
        )
    return stream_id


def _check_crdt_type(crdt_type: object) -> None:
    if not (
        isinstance(crdt_type, type)
        and isinstance(getattr(crdt_type, "op_types", None), tuple)
        and callable(getattr(crdt_type, "effect", None))
        and callable(getattr(crdt_type, "compact", None))
    ):
        raise InvalidArgumentError(
            f"{crdt_type!r} is not a CRDT type; pass a class such as calliope.GCounter "
            f"(or your own with value, effect, compact and op_types)"
        )


def _check_count(replicas: object, timeout: object) -> None:
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= 1000:
        raise InvalidArgumentError(
            f"replicas must be an int from 1 to 1000 (this replica counts as one), got {replicas!r}"
        )
    if timeout is not None and (
        not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout >= 0
    ):
        raise InvalidArgumentError(
            f"timeout must be seconds (a number >= 0) or None for no limit, got {timeout!r}"
        )


def _value_of(state: object) -> object:
    return getattr(state, "value", state)
