"""The ports: what the shell needs from storage and from the codec.

Adapters (memory, files, PostgreSQL) implement these protocols; the shell's
handles talk to storage only through them, and every adapter passes the
same contract suite (:mod:`calliope.testing.contract`). Ports are narrow,
one concern each: plain logs, replica logs, change notification, snapshots,
replica progress, the store's feed.
Records cross a port as plain data (the codec's output): the adapter
decides how to lay it out, never what it means, and versions come from
:mod:`calliope.core.replication`, never from the adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

import attrs

from calliope.core.replication import RecordBatch, ReplicaPage

__all__ = [
    "ChangesPort",
    "CRDTTypeCodec",
    "CodecPort",
    "Durability",
    "FeedEntry",
    "FeedPage",
    "FeedPort",
    "NewEvent",
    "PlainLogPort",
    "ProgressPort",
    "ProgressRecord",
    "HeartbeatRecord",
    "RecordBatch",
    "ReplicaLogPort",
    "RepairReport",
    "ReplicaPage",
    "SnapshotPort",
    "StreamCatalogPort",
    "SnapshotRecord",
    "StorePort",
    "TypeCodec",
    "Watcher",
]

E = TypeVar("E")

Durability = Literal["fsync", "flush"]


class NewEvent(NamedTuple):
    """An encoded event about to be appended."""

    type_name: str
    schema_version: int
    data: Any


class SnapshotRecord(NamedTuple):
    """One stored snapshot as plain data."""

    sequence: int
    timestamp_us: int
    type_name: str
    schema_version: int
    data: Any


class Watcher(Protocol):
    """Wakes a live reader when a stream may have grown."""

    async def wait(self) -> None:
        """Return once the stream may hold more than when this was last
        called (at the latest after the adapter's polling interval)."""


@attrs.frozen
class RepairReport:
    """What ``app.journal.repair`` did to one log.

    ``last_sequence`` is the last sequence the log holds now (the next event
    takes the one after it); ``moved_aside`` lists the files that now hold
    what was cut off (nothing is deleted), ``bytes_moved`` their size. An
    intact log is left as it was: nothing moved.
    """

    stream_id: str
    replica_id: str | None
    last_sequence: int
    moved_aside: tuple[str, ...] = ()
    bytes_moved: int = 0

    @property
    def repaired(self) -> bool:
        """Whether anything was moved aside."""
        return bool(self.moved_aside)


class PlainLogPort(Protocol):
    """Plain streams: one append-only log per stream id, any writer.

    Sequences start at 1 and stay contiguous. Versions are decided by
    :func:`calliope.core.replication.next_batch`, never by the adapter.
    """

    async def append(
        self,
        stream_id: str,
        writer: str,
        events: Sequence[NewEvent],
        *,
        expected_sequence: int | None,
        timestamp_us: int,
    ) -> RecordBatch | None:
        """Atomically append ``events`` to the log of ``stream_id``.

        Raises ``ConcurrencyError`` (writing nothing) when
        ``expected_sequence`` is given and differs from the last sequence.
        Durable on return, per the store's durability setting. Returns None
        for no events.
        """
        ...

    def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        """Committed batches cut to ``from_sequence <= sequence <=
        to_sequence`` (no upper bound for None), in order, a bounded number
        at a time; ends at what is committed when the reader gets there."""
        ...

    async def last_sequence(self, stream_id: str) -> int:
        """The last committed sequence of the log (0 if empty)."""
        ...

    async def repair(self, stream_id: str, replica_id: str | None) -> RepairReport:
        """Make a damaged log (the plain one for ``replica_id`` None, else
        that replica's) readable and writable again: keep its intact prefix
        and move the rest aside, never deleting it. Nothing to do for an
        intact log. O(size of the log)."""
        ...


class ReplicaLogPort(Protocol):
    """Replicated streams: one append-only log per replica, one writer each."""

    async def append_replica(
        self,
        stream_id: str,
        replica_id: str,
        events: Sequence[NewEvent],
        *,
        observed: Mapping[str, int],
        timestamp_us: int,
    ) -> RecordBatch | None:
        """Atomically append ``events`` to ``replica_id``'s log of ``stream_id``,
        after everything ``observed`` (what the writer has seen of other
        replicas). Durable on return."""
        ...

    async def replicas(self, stream_id: str) -> list[str]:
        """The replica ids that have a log in the replicated stream, sorted."""
        ...

    def read_replica(
        self, stream_id: str, replica_id: str, from_sequence: int, to_sequence: int | None = None
    ) -> AsyncIterator[list[RecordBatch]]:
        """Like :meth:`PlainLogPort.read`, on one replica's log."""
        ...

    async def read_new(
        self,
        stream_id: str,
        known: Mapping[str, int],
        *,
        limit: int,
        exclude: Collection[str] = (),
    ) -> list[ReplicaPage]:
        """One page per replica log (but those in ``exclude``) holding events after
        ``known[replica]`` (0 when absent): at most about ``limit`` events each
        (whole batches; at least one batch), with ``more`` set when the log
        holds more. Replicas with nothing new are left out."""
        ...

    async def replica_version(self, stream_id: str, replica_id: str) -> dict[str, int]:
        """The version of the last event in ``replica_id``'s log ({} if none)."""
        ...


class StreamCatalogPort(Protocol):
    """Which streams a store holds."""

    def list_streams(self, prefix: str | None) -> AsyncIterator[list[tuple[str, bool]]]:
        """Pages of (stream id, replicated) of every stream that was written,
        whose id starts with ``prefix`` (all for None), each once, in an
        order stable for the store (not sorted). Memory O(a page)."""
        ...


class FeedEntry(NamedTuple):
    """One stored batch as the store's feed holds it: ``entry`` is its
    number in the feed (feed order; one entry may hold several batches, all
    in the same page), ``replica_id`` the replica log it is in (None for a
    plain stream's log)."""

    entry: int
    stream_id: str
    replica_id: str | None
    batch: RecordBatch
    # Events of the same entry before this batch, when an entry spans several
    # logs (an adapter whose entry is one write to one log leaves it None:
    # the reader counts them, as a page holds whole entries).
    first_index: int | None = None


class FeedPage(NamedTuple):
    """What one read of the feed found: the entries (feed order), the entry
    number to read on from (past every entry looked at, those left out
    too), whether the feed held more, committed, when it was read, and the
    number the feed's next entry will take (its end then)."""

    entries: list[FeedEntry]
    next_entry: int
    more: bool
    end: int


class FeedPort(Protocol):
    """The store's feed: every batch of every stream, plain or replicated,
    numbered in one order.

    The numbers grow in the order batches become visible to readers, so the
    order respects each log's order and causality across the replicas of a
    replicated stream (a replica's batch comes after every batch it
    observed). A batch still being committed holds its place: a reader stops
    before it (never past it), and goes on once it is committed (or, if its
    writer died without committing it, once that is certain: then the entry
    is left out). Numbers need not be dense.
    """

    async def read_feed(self, start: int, prefix: str | None, *, limit: int) -> FeedPage:
        """Entries numbered ``start`` or more, in order, of the streams
        :func:`calliope.core.ids.in_feed` ``(stream, prefix)`` admits
        (others are passed over without reading their events), about
        ``limit`` events at most (whole batches, at least one). Ends early,
        with ``more`` False, before a batch still being committed.
        O(entries looked at + events read); memory O(limit)."""
        ...

    def watch_feed(self) -> AbstractAsyncContextManager[Watcher]:
        """A watcher woken when the feed may have grown (an append by this
        process at once, by others within the polling interval)."""
        ...


class ChangesPort(Protocol):
    """Change notification: wakes live readers when a stream grows."""

    def watch(
        self, stream_id: str, *, ignoring: str | None = None
    ) -> AbstractAsyncContextManager[Watcher]:
        """A watcher for appends to ``stream_id`` (its plain log or any of its
        replica logs) by this or other processes. However many watchers an
        app holds on one stream, the adapter looks for changes once.
        ``ignoring``: appends this app makes to that replica's log need not
        wake it (it may still wake, e.g. when a poll sees them)."""
        ...


class SnapshotPort(Protocol):
    """Durable snapshots, several kept per id."""

    async def save(self, snapshot_id: str, record: SnapshotRecord) -> None:
        """Store durably (atomically replacing nothing older than it)."""
        ...

    async def load(self, snapshot_id: str) -> SnapshotRecord | None:
        """The newest undamaged snapshot, or None. Damaged ones are skipped
        with a logged warning, never returned."""
        ...

    def ids(self, prefix: str | None) -> AsyncIterator[list[str]]:
        """Pages of the ids that have a snapshot and start with ``prefix``
        (every id for None), each id once, in no particular order. Memory:
        one page; time O(ids in the store) on the file store, which looks
        at every id's directory."""
        ...

    async def check(self, snapshot_id: str) -> list[str]:
        """A line for each kept snapshot of ``snapshot_id`` that does not
        read back, naming its file (or row) and what is wrong; [] when every
        one does. Reads every kept copy: O(their size)."""
        ...


class ProgressRecord(NamedTuple):
    """What one replica last reported having applied of one replicator key."""

    replica_id: str
    delivered: dict[str, int]
    timestamp_us: int


class HeartbeatRecord(NamedTuple):
    """One replica's last sign of life: when (its clock, microseconds since
    the epoch) and whether it was still running (False once it closed)."""

    replica_id: str
    timestamp_us: int
    running: bool


class ProgressPort(Protocol):
    """Replica progress for the replicator: per key, what each replica has
    applied; per replica, a heartbeat. Records replace older ones whole."""

    async def report(
        self, key: str, replica_id: str, delivered: Mapping[str, int], *, timestamp_us: int
    ) -> None:
        """Record that ``replica_id`` has applied ``delivered`` of ``key``'s
        operations, replacing its previous report atomically (a crash leaves
        the old report or the new one; it survives the process). It need not
        survive a power loss: an older report only makes others wait longer."""
        ...

    async def reports(self, key: str) -> list[ProgressRecord]:
        """Every replica's last report on ``key``, sorted by replica id.
        O(replicas)."""
        ...

    async def reporters_token(self, key: str) -> object:
        """A value that changes whenever a replica reports on ``key`` for the
        first time (compare with ``==``; it may also change when nothing
        did); cheap (one ``stat`` on files). The replicator reads no reports
        while it is the key's only reporter and this stays the same."""
        ...

    async def claim_type(self, key: str, type_name: str) -> str:
        """The CRDT type name ``key`` holds: the one already claimed, else
        ``type_name``, claimed now, atomically (of two stores claiming at
        once, one wins and both return its name). A read-only store claims
        nothing and returns ``type_name`` if none was claimed."""
        ...

    async def beat(self, replica_id: str, *, timestamp_us: int, running: bool = True) -> None:
        """Record a heartbeat of ``replica_id`` (``running`` False: it closed)."""
        ...

    async def heartbeats(self) -> list[HeartbeatRecord]:
        """Every replica's last heartbeat, sorted by replica id. O(replicas)."""
        ...


class StorePort(Protocol):
    """One store: its ports, and the resources an app holds while open.

    The constructor does no I/O; :meth:`open` acquires what the store needs
    (directories, connections, the replica lease) and :meth:`aclose`
    releases all of it, ending every task the store started.
    """

    @property
    def plain(self) -> PlainLogPort: ...

    @property
    def replicated(self) -> ReplicaLogPort: ...

    @property
    def changes(self) -> ChangesPort: ...

    @property
    def catalog(self) -> StreamCatalogPort:
        """The streams the store holds (usually the log object itself)."""
        ...

    @property
    def snapshots(self) -> SnapshotPort: ...

    @property
    def feed(self) -> FeedPort:
        """The store's feed of every batch (usually the log object itself)."""
        ...

    @property
    def progress(self) -> ProgressPort: ...

    @property
    def replica_id(self) -> str:
        """The replica id this store was opened as (given or the default)."""
        ...

    async def open(self) -> None:
        """Acquire the store's resources and its replica lease. If cancelled
        or failing part-way, it holds nothing afterwards."""
        ...

    async def lease(self, replica_id: str) -> None:
        """Hold ``replica_id`` too, until the store closes (idempotent).
        Raises ReplicaInUseError if another live app holds it."""
        ...

    async def aclose(self) -> None:
        """Release every resource (files, locks, tasks, the replica leases)."""
        ...


class TypeCodec(Protocol[E]):
    """Turns values of one declared type (or union) into plain data and back."""

    @property
    def type_names(self) -> frozenset[str]:
        """The stored type names it decodes (a reader skips the others
        without decoding them)."""
        ...

    def encode(self, value: E) -> NewEvent: ...

    def decode(self, type_name: str, schema_version: int, data: Any) -> E:
        """Decode one stored value; fast when called for one type repeatedly."""
        ...


class CRDTTypeCodec(TypeCodec[Any], Protocol):
    """One CRDT type's operations (as events) and states (for snapshots)."""

    name: str

    def encode_state(self, state: Any) -> Any: ...

    def decode_state(self, type_name: str, data: Any) -> Any: ...


class CodecPort(Protocol):
    """Builds a :class:`TypeCodec` for a declared type (cached by the caller)."""

    def for_type(self, declared: Any) -> TypeCodec[Any]: ...

    def for_crdt(self, crdt_type: type) -> CRDTTypeCodec:
        """The codec of a CRDT type's operations and states (cached)."""
        ...
