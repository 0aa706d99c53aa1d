"""Replicated event streams: many replicas write one stream concurrently.

Each replica appends to its own log; every event carries a version vector
(the rules are in :mod:`calliope.core.replication`). Reading merges the
logs in one deterministic causal order (:mod:`.replicated_queries`).

**Persist writes first, then reads** what other replicas appended since the
version its event followed, and reports the stored events concurrent with
it. If two events are concurrent, whichever of their writers finished
writing second reads the other's event afterwards and reports it: at least
one writer is always told.

**Concurrent persists on one handle share the work**, as a group commit
does: the first caller starts a *round* (a task the app owns); callers
arriving while it runs queue for the next one. A round appends its events
in one atomic batch, after everything the handle had observed, then reads
the other replicas' logs once, from where the previous round stopped, a page
at a time, and decides each event's reply from versions alone
(:class:`calliope.core.replication.RoundReplies`): only the events a
reply lists are decoded. So N concurrent persists cost O(N + what other
replicas wrote), not O(N²).

**A persist never fails after its event is written.** What goes wrong while
building the reply (an event that cannot be decoded, a storage error on the
read) is reported in the reply's ``errors`` (``complete`` is then False),
and the handle observes its own write in any case. A caller cancelled while
waiting stops waiting; its round goes on, so its event is either written
and observed by the handle, or not written at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from calliope.core.envelope import Envelope
from calliope.core.persist_reply import PersistReply
from calliope.core.replication import RecordBatch, RoundReplies
from calliope.core.version_vector import VersionVector
from calliope.errors import (
    AppClosedError,
    CalliopeError,
    EventDecodingError,
    EventEncodingError,
    InvalidArgumentError,
    StorageError,
)
from calliope.shell.ports import ChangesPort, NewEvent, ReplicaLogPort, TypeCodec
from calliope.shell.records import envelopes_of, to_timestamp_us
from calliope.shell.replica_merge import PAGE
from calliope.shell.replicated_queries import ReplicatedLiveQuery, ReplicatedQuery
from calliope.shell.replicated_source import ReplicatedSource
from calliope.shell.scope import AppScope
from calliope.shell.skipped import OnSkip, Undecodable, policy_of

__all__ = ["DEFAULT_MAX_REPORTED", "MAX_REPORTED", "ReplicatedEventStream"]

E = TypeVar("E")

DEFAULT_MAX_REPORTED = 100
"""How many concurrent updates a persist reply lists at most, by default."""

MAX_REPORTED = 100_000
"""The most a reply may list (a reply is held in memory whole)."""


class _Pending(NamedTuple):
    """One queued persist."""

    event: Any
    encoded: NewEvent
    limit: int
    reply: asyncio.Future[PersistReply[Any]]


class ReplicatedEventStream(Generic[E]):
    """One replica's handle on a stream that many replicas write concurrently.

    Obtained from ``app.journal.replicated_event_stream(stream_id, EventType)``.
    ``version`` is what this handle has observed: the replica's own past
    (resumed from the journal on first use), what its queries yielded, and
    what persists read. A persisted event's version is that observed version
    advanced at this replica, so it follows everything the handle has seen
    and nothing else.
    """

    def __init__(
        self,
        stream_id: str,
        event_type: Any,
        replica_id: str,
        *,
        log: ReplicaLogPort,
        changes: ChangesPort,
        codec: TypeCodec[Any],
        clock: Callable[[], Any],
        scope: AppScope,
        before_first_use: Callable[[], Awaitable[None] | None] = lambda: None,
    ) -> None:
        self.stream_id = stream_id
        self.event_type = event_type
        self.replica_id = replica_id
        self._clock = clock
        self._source: ReplicatedSource[E] = ReplicatedSource(
            stream_id, replica_id, log, changes, codec, scope, before_first_use
        )
        self._queue: list[_Pending] = []
        self._round: asyncio.Task[None] | None = None
        # Per other replica, the last sequence a round has read: the next
        # round reads on from here (or from what the handle observed, if more).
        self._read: dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"ReplicatedEventStream({self.stream_id!r}, replica={self.replica_id!r}, "
            f"version={self.version!r})"
        )

    @property
    def version(self) -> VersionVector:
        """What this handle has observed (see the class docstring)."""
        return self._source.version

    def query(
        self,
        since: VersionVector | None = None,
        *,
        undecodable: Undecodable = "raise",
        on_skip: OnSkip | None = None,
    ) -> ReplicatedQuery[E]:
        """Every replica's events not at or below ``since`` (default: all), in
        the deterministic causal order.

        An event this handle cannot decode raises
        :class:`calliope.EventDecodingError` (``undecodable="raise"``); with
        ``undecodable="skip"`` it is left out, logged at WARNING on the
        "calliope" logger, and passed to ``on_skip`` as a
        :class:`calliope.SkippedEvent`. A skipped event still counts as read:
        the handle observes its version, so the events after it are
        delivered, and the next persist follows it.
        """
        return ReplicatedQuery(self._source, _since(since), policy_of(undecodable, on_skip))

    def live_query(
        self,
        since: VersionVector | None = None,
        *,
        undecodable: Undecodable = "raise",
        on_skip: OnSkip | None = None,
    ) -> ReplicatedLiveQuery[E]:
        """Catch-up from ``since``, then new events from every replica.
        ``undecodable`` and ``on_skip`` as for :meth:`query`."""
        return ReplicatedLiveQuery(self._source, _since(since), policy_of(undecodable, on_skip))

    async def persist(
        self, event: E, *, max_reported: int = DEFAULT_MAX_REPORTED
    ) -> PersistReply[E]:
        """Append ``event`` after everything this handle has observed; durable
        on return. The reply lists up to ``max_reported`` events by other
        replicas that were concurrent with it, in causal order, and counts
        the rest (``more_concurrent_updates``; ``query(since=reply.since)``
        reads them). The handle then observes them, so an event persisted
        next (e.g. one resolving the conflict) follows them.

        Raises only before anything is written (a closed app, an event that
        cannot be encoded, a failed write); afterwards, problems building the
        reply are reported in ``reply.errors``.
        """
        if (
            not isinstance(max_reported, int)
            or isinstance(max_reported, bool)
            or not 0 <= max_reported <= MAX_REPORTED
        ):
            raise InvalidArgumentError(
                f"max_reported must be an int from 0 to {MAX_REPORTED:,}, got {max_reported!r}; "
                f"query(since=reply.since) reads any number of concurrent updates"
            )
        source = self._source
        source.scope.begin()
        try:
            await source.start()
            encoded = source.codec.encode(event)
            reply: asyncio.Future[PersistReply[E]] = asyncio.get_running_loop().create_future()
            self._queue.append(_Pending(event, encoded, max_reported, reply))
            if self._round is None:
                self._round = source.scope.spawn(self._run_rounds())
        finally:
            source.scope.end()
        return await reply

    async def _run_rounds(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue, []
                await self._round_of(group)
        finally:
            self._round = None
            # Only if this task was torn down (the event loop is going away):
            # whoever still waits was not written, and hears so.
            queued, self._queue = self._queue, []
            for pending in queued:
                if not pending.reply.done():
                    pending.reply.set_exception(
                        AppClosedError("the app closed before this persist was written")
                    )

    async def _round_of(self, group: list[_Pending]) -> None:
        """Write ``group`` as one batch, then answer each caller."""
        source = self._source
        observed = source.counts.copy()
        # (A round is never cancelled while its app is open: the app's close
        # waits for it. Only a loop being torn down cancels it.)
        try:
            stored = await source.log.append_replica(
                self.stream_id,
                self.replica_id,
                [pending.encoded for pending in group],
                observed=observed,
                timestamp_us=to_timestamp_us(self._clock()),
            )
        except BaseException as failure:  # nothing written: every caller hears why
            if isinstance(failure, EventEncodingError) and len(group) > 1:
                for pending in group:  # too big together: each on its own
                    await self._round_of([pending])
                return
            for pending in group:
                if pending.reply.done():
                    continue
                if isinstance(failure, asyncio.CancelledError):
                    pending.reply.cancel()
                else:
                    pending.reply.set_exception(failure)
            if not isinstance(failure, Exception):
                raise
            return
        if stored is None:  # pragma: no cover - events always make a batch
            raise StorageError("the journal stored nothing for a persist; report this as a bug")
        source.observe(stored.last_version)
        envelopes = envelopes_of(self.stream_id, stored, [pending.event for pending in group])
        try:
            replies = await self._replies(stored, envelopes, group, observed)
        except BaseException as error:  # a bug or cancellation: still answer, never raise
            self._answer(group, self._interrupted(envelopes, error))
            if not isinstance(error, Exception):
                raise
            return
        self._answer(group, replies)

    @staticmethod
    def _interrupted(
        envelopes: list[Envelope[Any]], error: BaseException
    ) -> list[PersistReply[Any]]:
        """Replies for written events whose concurrent updates could not be read."""
        problem = StorageError(
            f"reading the concurrent updates was interrupted ({error!r}); "
            f"query(since=reply.since) reads them"
        )
        return [PersistReply(envelope=envelope, errors=(problem,)) for envelope in envelopes]

    @staticmethod
    def _answer(group: list[_Pending], replies: list[PersistReply[Any]]) -> None:
        for pending, reply in zip(group, replies, strict=True):
            if not pending.reply.done():
                pending.reply.set_result(reply)

    async def _replies(
        self,
        stored: RecordBatch,
        envelopes: list[Envelope[E]],
        group: list[_Pending],
        observed: dict[str, int],
    ) -> list[PersistReply[E]]:
        """Read the other replicas' new events a page at a time and keep, per
        range of the round's events, the first concurrent ones (decided from
        versions alone); decode only what a reply lists. O(N + new events *
        replicas) for N events in the round."""
        source = self._source
        limit = max(pending.limit for pending in group)
        known = dict(self._read)
        for replica, counter in observed.items():  # observed before the round: in its past
            if replica != self.replica_id and counter > known.get(replica, 0):
                known[replica] = counter
        found = RoundReplies(
            first=stored.version, own=self.replica_id, count=len(group), limit=limit
        )
        errors: list[CalliopeError] = []
        while True:
            try:
                pages = await source.log.read_new(
                    self.stream_id, known, limit=PAGE, exclude=(self.replica_id,)
                )
            except CalliopeError as error:
                errors.append(error)
                break
            for page in pages:
                found = found.offer(page.batches)
                last = page.batches[-1]
                known[page.replica] = max(known.get(page.replica, 0), last.last_sequence)
                source.observe(last.last_version)
            if not any(page.more for page in pages):
                break
        self._read = known
        decoded: dict[tuple[str, int], Envelope[E] | CalliopeError] = {}
        replies = []
        for index, (envelope, pending) in enumerate(zip(envelopes, group, strict=True)):
            selection = found.selection(index, pending.limit)
            listed: list[Envelope[E]] = []
            problems = list(errors)
            for batch, offset in selection.listed:
                dot = (batch.writer, batch.first_sequence + offset)
                if dot not in decoded:
                    decoded[dot] = self._decode(batch, offset)
                other = decoded[dot]
                if isinstance(other, CalliopeError):
                    problems.append(other)
                else:
                    listed.append(other)
            replies.append(
                PersistReply(
                    envelope=envelope,
                    concurrent_updates=tuple(listed),
                    more_concurrent_updates=selection.more + len(selection.listed) - len(listed),
                    errors=tuple(problems),
                )
            )
        return replies

    def _decode(self, batch: RecordBatch, index: int) -> Envelope[E] | CalliopeError:
        """The envelope of a concurrent event, or the error saying why it
        cannot be decoded: a reply reports it instead of raising."""
        try:
            return self._source.envelope(batch, index)
        except CalliopeError as error:
            return EventDecodingError(
                f"the concurrent update {batch.first_sequence + index} by replica "
                f"{batch.writer!r} of stream {self.stream_id!r} cannot be decoded as "
                f"{self.event_type!r}: {error}; declare its type on this handle to see it"
            )


def _since(since: object) -> VersionVector | None:
    """``since`` as a version vector (a mapping of replica ids to counters
    is accepted too), or None; anything else is the caller's mistake."""
    if since is None or isinstance(since, VersionVector):
        return since
    if isinstance(since, Mapping):
        return VersionVector(since)  # validates its entries
    raise InvalidArgumentError(
        f"since must be a calliope.VersionVector (or None for everything), got {since!r}; "
        f"use a handle's version, an envelope's version or a reply's since"
    )
