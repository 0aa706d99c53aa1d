"""One replicator key, as this replica holds it: state, delivery, updates.

A key's operations live in one replicated stream (``$calliope/crdt/<key>``),
one log per replica, as tagged operations: an operation's stored version is
its tag. A :class:`CRDTKey` holds this replica's state of the key and the
vector of what it has applied (*delivered*), and keeps them moving:

* **Start** (once): load the key's newest CRDT snapshot (any replica's),
  record progress (so that from now on this replica holds back stability),
  then apply every stored operation after the snapshot, in causal order.
  Only then does it accept updates: a new operation is always tagged after
  everything that was in the store when the key started here.
* **Follow**: a live query over the key's stream (a task the replicator
  owns) applies other replicas' operations in causal order, each once.
* **Update rounds**: concurrent ``update`` calls share one write, as a
  group commit. A round runs each caller's prepare step against the state
  left by the previous one, tags the operations after *delivered* (exactly
  what they were prepared against), appends them in one atomic batch and
  only then makes them the state: an operation is durable before anything
  counts it. It then records this replica's progress and answers: a ``get``
  on any replica after that includes the round. A prepare that raises, or
  returns something that is not an operation of the key's type (or would not
  read back equal), fails that caller only, before anything is written.

A lock keeps rounds and remote deliveries apart, so the state and
*delivered* always move together. If the follower fails (a stored operation
of another CRDT type, damage), the key stops and every later call raises
that error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from calliope.core.crdt.protocol import Tagged, as_operations, effect_all, tag_operations
from calliope.core.envelope import Dot, Envelope
from calliope.core.version_vector import VersionVector
from calliope.errors import AppClosedError, CalliopeError, KeyDeletedError, StorageError
from calliope.shell.crdt_storage import KeyStorage
from calliope.shell.key_deleted import DELETED
from calliope.shell.ports import CRDTTypeCodec, NewEvent, ReplicaLogPort
from calliope.shell.records import to_timestamp_us
from calliope.shell.replicated_queries import ReplicatedLiveQuery, ReplicatedQuery
from calliope.shell.replicated_source import ReplicatedSource

__all__ = ["CRDTKey", "Changed"]

logger = logging.getLogger("calliope")

MAX_ROUND = 1024
"""The most update calls one round writes (the rest wait for the next)."""


class _Update(NamedTuple):
    prepare: Callable[[Any], object]
    reply: asyncio.Future[tuple[Any, Dot | None]]


class Changed:
    """A generation counter that tasks wait on until it moves (or closes)."""

    def __init__(self) -> None:
        self.generation = 0
        self.closed = False
        self._waiters: list[asyncio.Future[None]] = []

    def fire(self) -> None:
        self.generation += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        self.fire()

    async def wait(self, seen: int, timeout: float | None = None) -> bool:
        """Until the generation differs from ``seen`` (True) or ``timeout``
        seconds passed (False)."""
        if self.generation != seen or self.closed:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False
        finally:
            if not waiter.done():
                waiter.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return True


class CRDTKey:
    """This replica's state of one key (see the module docstring)."""

    def __init__(
        self,
        key: str,
        crdt_type: type,
        *,
        source: ReplicatedSource[Any],
        codec: CRDTTypeCodec,
        storage: KeyStorage,
        clock: Callable[[], Any],
        on_progress: Callable[[], None],
        before_round: Callable[[], Awaitable[None]] | None = None,
        after_round: Callable[[], None] = lambda: None,
    ) -> None:
        self.key = key
        self.crdt_type = crdt_type
        self.source = source
        self.codec = codec
        self.storage = storage
        self._clock = clock
        self._on_progress = on_progress
        self._before_round = before_round
        self._after_round = after_round
        self.own = source.replica_id
        self.state: Any = crdt_type()
        self.counts: dict[str, int] = {}
        self._delivered: VersionVector | None = VersionVector()
        self.deleted_by: str | None = None
        self.applied = 0  # operations applied since start (for snapshot pacing)
        self.changed = Changed()
        self.failure: BaseException | None = None
        self.lock = asyncio.Lock()
        self._started = False
        self._starting = asyncio.Lock()
        self._queue: list[_Update] = []
        self._round: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._live: ReplicatedLiveQuery[Any] | None = None

    def __repr__(self) -> str:
        return f"<CRDTKey {self.key!r} {self.crdt_type.__name__} delivered={self.delivered!r}>"

    @property
    def started(self) -> bool:
        return self._started

    @property
    def log(self) -> ReplicaLogPort:
        return self.source.log

    @property
    def delivered(self) -> VersionVector:
        """What this replica has applied of the key."""
        if self._delivered is None:
            self._delivered = VersionVector.unchecked(dict(self.counts))
        return self._delivered

    def check(self) -> None:
        """Raise why the key cannot be used, if it cannot."""
        if self.failure is not None:
            raise self.failure
        if self.deleted_by is not None:
            raise KeyDeletedError(
                f"replicator key {self.key!r} was deleted (by replica {self.deleted_by!r}); "
                f"a deleted key stays deleted: use another key"
            )
        if self.changed.closed:
            raise AppClosedError("the app closed; open it again to use the replicator")

    # -- start and follow -----------------------------------------------------

    async def start(self) -> None:
        """Load the snapshot, register, catch up, then follow (once)."""
        if self._started:
            return
        async with self._starting:
            if self._started:
                return
            await self.storage.claim_type()
            await self.source.start()
            loaded = await self.storage.load()
            if loaded is not None:
                self.state, counts, self.deleted_by = loaded
                self.counts = dict(counts)
                self._delivered = None
            await self.storage.report(self.counts)  # hold back stability from now on
            query = ReplicatedQuery(self.source, self.delivered)
            pause = _Pauser()
            async for envelope in query:
                self._apply(envelope)
                await pause.now_and_then()
            self._started = True
            live: ReplicatedLiveQuery[Any] = ReplicatedLiveQuery(
                self.source, self.delivered, passing=self.own
            )
            await live.__aenter__()
            self._live = live
            self._follower = asyncio.get_running_loop().create_task(self._follow(live))

    async def _follow(self, live: ReplicatedLiveQuery[Any]) -> None:
        pause = _Pauser()
        try:
            async for envelope in live:
                if self.lock.locked():  # a round is writing: apply after it
                    async with self.lock:
                        self._apply(envelope)
                else:
                    self._apply(envelope)
                await pause.now_and_then()
        except Exception as error:  # the key stops; every call raises it
            self.failure = error
            self.changed.fire()

    def _apply(self, envelope: Envelope[Any]) -> None:
        """Apply one delivered operation, unless already applied."""
        replica = envelope.replica_id
        counter = envelope.sequence
        if counter <= self.counts.get(replica, 0):
            return  # our own (applied by its round) or in the snapshot
        if envelope.event is DELETED:
            self.deleted_by = replica
        else:
            tagged = Tagged(replica_id=replica, version=envelope.version, op=envelope.event)
            self.state = self.state.effect(tagged)
        self.counts[replica] = counter
        self._delivered = None
        self.applied += 1
        self.changed.fire()
        self._on_progress()

    async def caught_up(self) -> None:
        """Apply everything stored now (one finite read), then return."""
        pause = _Pauser()
        async with self.lock:
            async for envelope in ReplicatedQuery(self.source, self.delivered):
                self._apply(envelope)
                await pause.now_and_then()

    # -- updates --------------------------------------------------------------

    async def update(self, prepare: Callable[[Any], object]) -> tuple[Any, Dot | None]:
        """Queue ``prepare`` for the next round; the state after its
        operations and the dot of its last one (None if it returned no
        operation: nothing is written), once durable. The caller has
        begun an operation on the app's scope (so close waits for the round)."""
        self.check()
        reply: asyncio.Future[tuple[Any, Dot | None]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Update(prepare, reply))
        if self._round is None:
            self._round = self.source.scope.spawn(self._run_rounds())
        return await reply

    async def _run_rounds(self) -> None:
        try:
            while self._queue or await _one_more_turn(self._queue):
                group, self._queue = self._queue[:MAX_ROUND], self._queue[MAX_ROUND:]
                try:
                    if self._before_round is not None and self.failure is None:
                        await self._before_round()  # catch up, outside the lock
                    async with self.lock:
                        await self._round_of(group)
                except BaseException as error:  # a bug: still answer everyone
                    for update in group:
                        if not update.reply.done():
                            update.reply.set_exception(
                                error if isinstance(error, Exception) else _closed()
                            )
                    if not isinstance(error, Exception):
                        raise
        finally:
            self._round = None
            queued, self._queue = self._queue, []
            for update in queued:
                if not update.reply.done():
                    update.reply.set_exception(_closed())

    async def _round_of(self, group: list[_Update]) -> None:
        """Prepare, tag and write ``group``; then apply and answer."""
        try:
            self.check()
        except BaseException as error:
            for update in group:
                if not update.reply.done():
                    update.reply.set_exception(error)
            return
        state = self.state
        version = self.delivered
        encoded: list[NewEvent] = []
        answers: list[tuple[_Update, Any, Dot]] = []
        deleting = False
        pause = _Pauser()
        for update in group:
            await pause.now_and_then()  # a long round lets the loop breathe (lock held)
            if update.reply.done():  # the caller was cancelled: write nothing for it
                continue
            if deleting:
                update.reply.set_exception(
                    KeyDeletedError(
                        f"replicator key {self.key!r} is being deleted (by replica "
                        f"{self.own!r}); a deleted key stays deleted: use another key"
                    )
                )
                continue
            try:
                operations = as_operations(update.prepare(state))
                if not operations:  # nothing to do: nothing written
                    update.reply.set_result((state, None))
                    continue
                events = [self.codec.encode(operation) for operation in operations]
                tagged = tag_operations(self.own, version, operations)
                after = effect_all(state, [one for one in tagged if one.op is not DELETED])
            except BaseException as error:  # this caller's mistake: nothing of it is written
                # (no await in the try: even a CancelledError came from prepare)
                if isinstance(error, asyncio.CancelledError):
                    update.reply.cancel()
                else:
                    update.reply.set_exception(error)  # SystemExit too: raised in the caller
                continue
            deleting = any(operation is DELETED for operation in operations)
            state = after
            version = tagged[-1].version
            encoded.extend(events)
            answers.append((update, state, tagged[-1].dot))
        if not answers:
            return
        own = self.own
        first_counter = self.counts.get(own, 0) + 1
        observed = {replica: count for replica, count in self.counts.items() if replica != own}
        try:
            stored = await self.log.append_replica(
                self.source.stream_id,
                own,
                encoded,
                observed=observed,
                timestamp_us=to_timestamp_us(self._clock()),
            )
        except BaseException as failure:  # nothing written: every caller hears why
            for update, _, _ in answers:
                if not update.reply.done():
                    update.reply.set_exception(failure)
            if not isinstance(failure, Exception):
                raise
            return
        if stored is None or stored.first_sequence != first_counter:
            # Another writer appended to this replica's log: the lease should
            # make that impossible. Stop rather than apply mistagged operations.
            self.failure = StorageError(
                f"replica {own!r}'s log of replicator key {self.key!r} did not continue at "
                f"operation {first_counter} as expected; another process wrote as this "
                f"replica. Reopen the app"
            )
            for update, _, _ in answers:
                if not update.reply.done():
                    update.reply.set_exception(self.failure)
            return
        if any(event.type_name == DELETED.name for event in encoded):
            self.deleted_by = own
        self.state = state
        self.counts[own] = version[own]
        if self._live is not None:  # the follower never reads this replica's log
            self._live.written(version[own])
        self._delivered = None
        self.applied += len(encoded)
        self.changed.fire()
        try:  # before answering: a get on any replica then includes the round
            await self.storage.report(self.counts)
        except CalliopeError as error:
            logger.warning("replicator key %r: recording progress failed (%s)", self.key, error)
            self._on_progress()  # the reporter retries
        self._after_round()
        for update, after, dot in answers:
            if not update.reply.done():
                update.reply.set_result((after, dot))

    # -- stop -----------------------------------------------------------------

    async def stop(self) -> None:
        """End the follower; wake every waiter (they see the app closed)."""
        live, self._live = self._live, None
        if live is not None:
            await live.close()
        follower, self._follower = self._follower, None
        if follower is not None:
            await asyncio.gather(follower, return_exceptions=True)
        self.changed.close()


async def _one_more_turn(queue: list[_Update]) -> bool:
    """Let the callers just answered run once: one that updates again at
    once joins this task's next round instead of starting a task."""
    await asyncio.sleep(0)
    return bool(queue)


def _closed() -> AppClosedError:
    return AppClosedError("the app closed before this update was written")


class _Pauser:
    """Lets a long loop of pure work give the event loop a turn every few
    milliseconds (``await pause.now_and_then()`` in the loop)."""

    __slots__ = ("_since",)

    SLICE = 0.005

    def __init__(self) -> None:
        self._since = time.perf_counter()

    async def now_and_then(self) -> None:
        now = time.perf_counter()
        if now - self._since >= self.SLICE:
            await asyncio.sleep(0)
            self._since = time.perf_counter()
