"""The ports: what the shell needs from storage and from the codec.

Adapters (memory, files, PostgreSQL) implement these protocols; the shell's
handles talk to storage only through them, so every adapter passes the same
contract suite. Records cross the port as plain data (the codec's output):
the adapter decides how to lay it out, never what it means.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

__all__ = [
    "CodecPort",
    "Durability",
    "EventLogPort",
    "NewEvent",
    "Record",
    "RecordBatch",
    "SnapshotPort",
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


class Record(NamedTuple):
    """One stored event as plain data.

    ``version`` is the full version vector (non-zero entries, counting this
    event at ``replica_id``); ``timestamp_us`` is microseconds since the Unix
    epoch, UTC.
    """

    sequence: int
    replica_id: str
    version: Mapping[str, int]
    timestamp_us: int
    type_name: str
    schema_version: int
    data: Any


class RecordBatch(NamedTuple):
    """One atomic append as stored: consecutive records by one writer.

    Record ``i`` (from 0) has sequence ``first_sequence + i`` and version
    ``version`` with the writer's entry raised by ``i``: ``version`` is the
    first record's, and each later record of the batch follows the one
    before it. ``items`` holds ``(type_name, schema_version, data)`` per
    record. All records share ``timestamp_us``.
    """

    first_sequence: int
    writer: str
    version: Mapping[str, int]
    timestamp_us: int
    items: Sequence[Sequence[Any]]

    @property
    def last_sequence(self) -> int:
        return self.first_sequence + len(self.items) - 1

    def records(self) -> list[Record]:
        """The batch as one record per event, each with its own version."""
        writer = self.writer
        base = dict(self.version)
        own = base.get(writer, 0)
        records = []
        for index, (type_name, schema_version, data) in enumerate(self.items):
            version = dict(base)
            version[writer] = own + index
            records.append(
                Record(
                    self.first_sequence + index,
                    writer,
                    version,
                    self.timestamp_us,
                    type_name,
                    schema_version,
                    data,
                )
            )
        return records

    def sliced(self, from_sequence: int, to_sequence: int | None) -> RecordBatch | None:
        """The part of the batch within the (inclusive) bounds, or None."""
        first, last = self.first_sequence, self.last_sequence
        start = max(from_sequence, first)
        end = last if to_sequence is None else min(to_sequence, last)
        if start > end:
            return None
        if start == first and end == last:
            return self
        version = dict(self.version)
        version[self.writer] = version.get(self.writer, 0) + (start - first)
        return RecordBatch(
            start,
            self.writer,
            version,
            self.timestamp_us,
            self.items[start - first : end - first + 1],
        )


class SnapshotRecord(NamedTuple):
    """One stored snapshot as plain data."""

    sequence: int
    timestamp_us: int
    type_name: str
    schema_version: int
    data: Any


class Watcher(Protocol):
    """Wakes a live reader when a log may have grown."""

    async def wait(self) -> None:
        """Return once the log may hold more than when this was last called
        (or at the latest after the adapter's polling interval)."""


class EventLogPort(Protocol):
    """Append-only logs of records, keyed by stream id.

    A *plain* stream has one log that any writer may extend; a *replicated*
    stream has one log per replica (``log_replica``), each with one writer.
    Sequences in a log start at 1 and stay contiguous.
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
        """Atomically append ``events`` to the plain log of ``stream_id``.

        The first record's version is the previous record's version
        incremented at ``writer`` (and so on). Raises ``ConcurrencyError``
        (writing nothing) when ``expected_sequence`` is given and differs
        from the last sequence. Durable on return, per the store's
        durability setting. Returns None for no events.
        """
        ...

    def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        """Committed batches cut to ``from_sequence <= sequence <=
        to_sequence`` (no upper bound for None), in order, several at a time;
        ends at what is committed when the reader gets there."""
        ...

    async def last_sequence(self, stream_id: str) -> int:
        """The last committed sequence of the plain log (0 if empty)."""
        ...

    def watch(self, stream_id: str) -> AbstractAsyncContextManager[Watcher]:
        """A watcher for appends to ``stream_id`` by this or other processes."""
        ...

    # Replicated streams: one log per replica.

    async def append_replica(
        self,
        stream_id: str,
        replica_id: str,
        events: Sequence[NewEvent],
        *,
        observed: Mapping[str, int],
        timestamp_us: int,
    ) -> RecordBatch | None:
        """Atomically append ``events`` to ``replica_id``'s log of ``stream_id``.

        The first event's version is the log's last version merged with
        ``observed`` (what the writer has seen of other replicas), its own
        entry raised by one, which is also its sequence in the log.
        """
        ...

    async def replicas(self, stream_id: str) -> list[str]:
        """The replica ids that have a log in the replicated stream, sorted."""
        ...

    def read_replica(
        self, stream_id: str, replica_id: str, from_sequence: int, to_sequence: int | None = None
    ) -> AsyncIterator[list[RecordBatch]]:
        """Like :meth:`read`, on one replica's log of a replicated stream."""
        ...

    async def read_new(self, stream_id: str, known: Mapping[str, int]) -> list[RecordBatch]:
        """Every committed batch of every replica log after ``known[replica]``
        (0 when absent), cut to the new events: what is new since a reader
        that has seen ``known`` last looked."""
        ...

    async def replica_version(self, stream_id: str, replica_id: str) -> dict[str, int]:
        """The version of the last event in ``replica_id``'s log ({} if none)."""
        ...

    def watch_replicated(self, stream_id: str) -> AbstractAsyncContextManager[Watcher]:
        """A watcher for appends to any replica log of ``stream_id``."""
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


class StorePort(Protocol):
    """One opened store: its logs, snapshots and replica lease."""

    @property
    def events(self) -> EventLogPort: ...

    @property
    def snapshots(self) -> SnapshotPort: ...

    @property
    def replica_id(self) -> str:
        """The replica id this store was opened as (given or the default)."""
        ...

    async def lease(self, replica_id: str) -> None:
        """Hold ``replica_id`` too, until the store closes (idempotent).
        Raises ReplicaInUseError if another live app holds it."""
        ...

    async def aclose(self) -> None:
        """Release every resource (files, locks, the replica leases)."""
        ...


class TypeCodec(Protocol[E]):
    """Turns values of one declared type (or union) into plain data and back."""

    def encode(self, value: E) -> NewEvent: ...

    def decode(self, type_name: str, schema_version: int, data: Any) -> E:
        """Decode one stored value; fast when called for one type repeatedly."""
        ...


class CodecPort(Protocol):
    """Builds a :class:`TypeCodec` for a declared type (cached by the caller)."""

    def for_type(self, declared: Any) -> TypeCodec[Any]: ...
