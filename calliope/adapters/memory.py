"""The memory adapter: ``calliope.open("memory://name")``.

Everything lives in this process. Apps opened with the same name share one
store while any of them is open (a weak registry keyed by name: the only
process-wide state in Calliope, and it holds nothing once the last app with
that name closes), so tests can run several replicas in one process.
Records are kept as the codec's plain data, exactly as other adapters store
them, so behaviour matches the durable adapters.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

import msgpack

from calliope.adapters.kinds import other_kind
from calliope.adapters.memory_feed import MemoryFeed
from calliope.adapters.memory_progress import MemoryProgress
from calliope.adapters.notify import Signal, SignalWatcher
from calliope.adapters.packing import is_large, pack_data, quick_to_pack, repack_data
from calliope.adapters.read_only import read_only_refused
from calliope.core.replication import RecordBatch, ReplicaPage, next_batch
from calliope.errors import (
    AppClosedError,
    ConcurrencyError,
    ReplicaInUseError,
)
from calliope.shell.ports import (
    FeedEntry,
    HeartbeatRecord,
    NewEvent,
    ProgressRecord,
    RepairReport,
    SnapshotRecord,
)

__all__ = ["MemoryStore", "shared_memory_backend"]

_BATCHES = 256
_PAGE = 1000
"""Snapshot ids per page of ``MemorySnapshots.ids``."""


def _stored(data: Any) -> Any:
    """``data`` as it comes back from storage: packed and unpacked again."""
    return msgpack.unpackb(pack_data(data), raw=False, strict_map_key=False)


def _stored_all(items: list[tuple[str, int, Any]]) -> list[Any]:
    return [_stored(item) for item in items]


def _repacked_all(items: list[tuple[str, int, Any]]) -> list[Any]:
    """Like :func:`_stored_all`, by the large-data paths: for a worker thread."""
    return [repack_data(item) if is_large(item) else _stored(item) for item in items]


class _MemoryLog:
    """One log's batches (a plain stream's, or one replica's)."""

    def __init__(self, signal: Signal) -> None:
        self.batches: list[RecordBatch] = []
        self.firsts: list[int] = []  # first sequence of each batch, for bisect
        self.last_sequence = 0
        self.version: dict[str, int] = {}
        self.signal = signal  # shared by the logs of one stream


class MemoryBackend:
    """The shared state of one named memory store."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.logs: dict[tuple[str, str | None], _MemoryLog] = {}
        self.signals: dict[str, Signal] = {}
        self.snapshots: dict[str, list[SnapshotRecord]] = {}
        self.progress: dict[str, dict[str, ProgressRecord]] = {}
        self.heartbeats: dict[str, HeartbeatRecord] = {}
        self.crdt_types: dict[str, str] = {}  # replicator key -> CRDT type name
        self.leases: set[str] = set()
        self.kinds: dict[str, bool] = {}  # stream -> replicated, once written
        self.feed: list[FeedEntry] = []  # every batch, numbered (memory_feed.py)
        self.feed_signal = Signal()
        self.default_replica_id = f"memory-{name}"

    def check_kind(self, stream_id: str, replicated: bool, *, reading: bool = False) -> None:
        """Refuse to write (or, ``reading``, to read) a replicated stream as
        plain or the reverse (InvalidArgumentError naming the id and its
        kind), as the file store does. An append records the kind in
        ``kinds``. O(1); under ``lock``."""
        known = self.kinds.get(stream_id)
        if known is not None and known != replicated:
            raise other_kind(stream_id, replicated=known, reading=reading)

    def log(self, stream_id: str, replica_id: str | None = None) -> _MemoryLog:
        """The plain log of a stream (``replica_id`` None) or a replica's log."""
        log = self.logs.get((stream_id, replica_id))
        if log is None:
            signal = self.signals.setdefault(stream_id, Signal())
            log = self.logs[(stream_id, replica_id)] = _MemoryLog(signal)
        return log

    def replicas(self, stream_id: str) -> list[str]:
        return sorted(
            replica
            for (stream, replica), log in self.logs.items()
            if stream == stream_id and replica is not None and log.batches
        )


_registry: weakref.WeakValueDictionary[str, MemoryBackend] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def shared_memory_backend(name: str) -> MemoryBackend:
    """The backend named ``name`` in this process (created if none is alive)."""
    with _registry_lock:
        backend = _registry.get(name)
        if backend is None:
            backend = MemoryBackend(name)
            _registry[name] = backend
        return backend


class MemoryEventLog:
    """Implements the plain and replica log ports (:mod:`calliope.shell.ports`) in memory."""

    def __init__(self, backend: MemoryBackend, *, read_only: bool = False) -> None:
        self._backend = backend
        self._read_only = read_only
        self.closed = False

    async def append(
        self,
        stream_id: str,
        writer: str,
        events: Sequence[NewEvent],
        *,
        expected_sequence: int | None,
        timestamp_us: int,
    ) -> RecordBatch | None:
        return await self._append(
            stream_id, None, writer, events, expected_sequence, None, timestamp_us
        )

    async def append_replica(
        self,
        stream_id: str,
        replica_id: str,
        events: Sequence[NewEvent],
        *,
        observed: Mapping[str, int],
        timestamp_us: int,
    ) -> RecordBatch | None:
        return await self._append(
            stream_id, replica_id, replica_id, events, None, observed, timestamp_us
        )

    async def _append(
        self,
        stream_id: str,
        replica_id: str | None,
        writer: str,
        events: Sequence[NewEvent],
        expected_sequence: int | None,
        observed: Mapping[str, int] | None,
        timestamp_us: int,
    ) -> RecordBatch | None:
        if self.closed:
            raise AppClosedError("this store is closed; open it again to write")
        if self._read_only:
            raise read_only_refused(
                f"memory://{self._backend.name}", f"writing to stream {stream_id!r}"
            )
        # Stored as the file store stores it (a msgpack round trip): the same
        # data is accepted, and nothing aliases the caller's.
        plain = [(e.type_name, e.schema_version, e.data) for e in events]
        if quick_to_pack([item[2] for item in plain]):
            items = _stored_all(plain)
        else:  # large: off the event loop (never holding the GIL long), as the file store does
            items = await asyncio.to_thread(_repacked_all, plain)
        if self.closed:
            raise AppClosedError("this store is closed; open it again to write")
        with self._backend.lock:
            self._backend.check_kind(stream_id, replica_id is not None)
            log = self._backend.log(stream_id, replica_id)
            last = log.last_sequence
            if expected_sequence is not None and expected_sequence != last:
                raise ConcurrencyError(
                    f"stream {stream_id!r} is at sequence {last}, not the expected "
                    f"{expected_sequence}; nothing was written. Read the new events and retry",
                    stream_id=stream_id,
                    expected=expected_sequence,
                    actual=last,
                )
            if not items:
                return None
            self._backend.kinds[stream_id] = replica_id is not None
            batch = next_batch(log.version, last, writer, items, timestamp_us, observed)
            feed = self._backend.feed
            batch = batch._replace(feed_entry=len(feed))
            feed.append(FeedEntry(len(feed), stream_id, replica_id, batch))
            log.batches.append(batch)
            log.firsts.append(batch.first_sequence)
            log.last_sequence = batch.last_sequence
            log.version = batch.last_version
        log.signal.fire(replica_id)
        self._backend.feed_signal.fire(replica_id)
        return batch

    async def last_sequence(self, stream_id: str) -> int:
        with self._backend.lock:
            self._backend.check_kind(stream_id, False, reading=True)
            return self._backend.log(stream_id).last_sequence

    async def repair(self, stream_id: str, replica_id: str | None) -> RepairReport:
        """Nothing in memory is ever damaged: reports the log as it is."""
        if replica_id is None:
            last = await self.last_sequence(stream_id)
        else:
            last = (await self.replica_version(stream_id, replica_id)).get(replica_id, 0)
        return RepairReport(stream_id, replica_id, last)

    def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        with self._backend.lock:
            self._backend.check_kind(stream_id, False, reading=True)
        return self._read(self._backend.log(stream_id), from_sequence, to_sequence)

    def read_replica(
        self, stream_id: str, replica_id: str, from_sequence: int, to_sequence: int | None = None
    ) -> AsyncIterator[list[RecordBatch]]:
        return self._read(self._backend.log(stream_id, replica_id), from_sequence, to_sequence)

    async def list_streams(self, prefix: str | None) -> AsyncIterator[list[tuple[str, bool]]]:
        with self._backend.lock:
            kinds = list(self._backend.kinds.items())
        page = [
            (stream, replicated)
            for stream, replicated in kinds
            if prefix is None or stream.startswith(prefix)
        ]
        for start in range(0, len(page), 256):
            yield page[start : start + 256]

    async def replicas(self, stream_id: str) -> list[str]:
        with self._backend.lock:
            self._backend.check_kind(stream_id, True, reading=True)
            return self._backend.replicas(stream_id)

    async def replica_version(self, stream_id: str, replica_id: str) -> dict[str, int]:
        with self._backend.lock:
            return dict(self._backend.log(stream_id, replica_id).version)

    async def read_new(
        self,
        stream_id: str,
        known: Mapping[str, int],
        *,
        limit: int,
        exclude: Collection[str] = (),
    ) -> list[ReplicaPage]:
        """O(replicas * log(batches) + page)."""
        pages = []
        with self._backend.lock:
            self._backend.check_kind(stream_id, True, reading=True)
            for replica in self._backend.replicas(stream_id):
                if replica in exclude:
                    continue
                log = self._backend.log(stream_id, replica)
                after = known.get(replica, 0)
                if log.last_sequence <= after:
                    continue
                index = max(bisect.bisect_right(log.firsts, after + 1) - 1, 0)
                taken: list[RecordBatch] = []
                count = 0
                while index < len(log.batches) and count < limit:
                    part = log.batches[index].sliced(after + 1, None)
                    index += 1
                    if part is not None:
                        taken.append(part)
                        count += len(part.items)
                pages.append(ReplicaPage(replica, taken, index < len(log.batches)))
        return pages

    async def _read(
        self, log: _MemoryLog, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        with self._backend.lock:
            index = max(bisect.bisect_right(log.firsts, from_sequence) - 1, 0)
        while True:
            with self._backend.lock:
                chunk = log.batches[index : index + _BATCHES]
            if not chunk:
                return
            index += len(chunk)
            wanted = [
                part
                for part in (batch.sliced(from_sequence, to_sequence) for batch in chunk)
                if part is not None
            ]
            if wanted:
                yield wanted
            if to_sequence is not None and chunk[-1].last_sequence >= to_sequence:
                return


class MemoryChanges:
    """Implements :class:`calliope.shell.ports.ChangesPort`: appends fire a
    per-stream signal, so watchers wake at once and nothing polls."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend

    @contextlib.asynccontextmanager
    async def watch(
        self, stream_id: str, *, ignoring: str | None = None
    ) -> AsyncIterator[SignalWatcher]:
        with self._backend.lock:
            signal = self._backend.signals.setdefault(stream_id, Signal())
        yield SignalWatcher(signal, ignoring)


class MemorySnapshots:
    """Implements :class:`calliope.shell.ports.SnapshotPort` in memory."""

    def __init__(self, backend: MemoryBackend, keep: int = 3, *, read_only: bool = False) -> None:
        self._backend = backend
        self._keep = keep
        self._read_only = read_only

    async def save(self, snapshot_id: str, record: SnapshotRecord) -> None:
        if self._read_only:
            raise read_only_refused(
                f"memory://{self._backend.name}", f"saving snapshot {snapshot_id!r}"
            )
        if is_large(record.data):  # packed and unpacked off the event loop
            record = record._replace(data=await asyncio.to_thread(repack_data, record.data))
        else:
            record = record._replace(data=_stored(record.data))
        with self._backend.lock:
            kept = self._backend.snapshots.setdefault(snapshot_id, [])
            kept.append(record)
            kept.sort(key=lambda r: (r.sequence, r.timestamp_us), reverse=True)
            del kept[self._keep :]

    async def load(self, snapshot_id: str) -> SnapshotRecord | None:
        with self._backend.lock:
            kept = self._backend.snapshots.get(snapshot_id)
            return kept[0] if kept else None

    async def ids(self, prefix: str | None) -> AsyncIterator[list[str]]:
        with self._backend.lock:
            found = [i for i in self._backend.snapshots if prefix is None or i.startswith(prefix)]
        for start in range(0, len(found), _PAGE):
            yield found[start : start + _PAGE]

    async def check(self, snapshot_id: str) -> list[str]:
        return []  # (kept as the values saved; nothing to damage)


class MemoryStore:
    """Implements :class:`calliope.shell.ports.StorePort` on a named backend.

    ``read_only``: no lease is taken, reads work, writes raise
    :class:`calliope.ReadOnlyStoreError` (as on the file store).
    """

    def __init__(self, name: str, *, replica_id: str | None, read_only: bool = False) -> None:
        self._name = name
        self._backend = shared_memory_backend(name)
        self._replica = replica_id or self._backend.default_replica_id
        self._read_only = read_only
        self._leased = False
        self._extra: set[str] = set()
        self._log = MemoryEventLog(self._backend, read_only=read_only)
        self.changes = MemoryChanges(self._backend)
        self.feed = MemoryFeed(self._backend)
        self.snapshots = MemorySnapshots(self._backend, read_only=read_only)
        backend = self._backend
        self.progress = MemoryProgress(
            name,
            backend.lock,
            backend.progress,
            backend.heartbeats,
            backend.crdt_types,
            read_only=read_only,
        )

    @property
    def plain(self) -> MemoryEventLog:
        return self._log

    @property
    def replicated(self) -> MemoryEventLog:
        return self._log

    @property
    def catalog(self) -> MemoryEventLog:
        return self._log

    @property
    def replica_id(self) -> str:
        return self._replica

    async def open(self) -> None:
        if not self._read_only:
            self._take(self._replica)
            self._leased = True

    def _take(self, replica_id: str) -> None:
        with self._backend.lock:
            if replica_id in self._backend.leases:
                raise ReplicaInUseError(
                    f"replica id {replica_id!r} is already in use on memory://{self._name} "
                    f"by another open app; close it, or open with a different replica_id"
                )
            self._backend.leases.add(replica_id)

    async def lease(self, replica_id: str) -> None:
        if self._read_only:
            return  # nothing is written, so nothing is leased
        if replica_id != self._replica and replica_id not in self._extra:
            self._take(replica_id)
            self._extra.add(replica_id)

    async def aclose(self) -> None:
        self._log.closed = True
        with self._backend.lock:
            if self._leased:
                self._backend.leases.discard(self._replica)
            self._backend.leases.difference_update(self._extra)
        self._leased = False
        self._extra.clear()
