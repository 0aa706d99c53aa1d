"""The file adapter's event log port: streams as segment logs in a directory.

A plain stream is one log (``streams/<h2>/<h>/log``) that any process may
extend. A replicated stream is one log per replica
(``streams/<h2>/<h>/replicas/<replica hash>/``, with the replica id in an
``id`` file), each written only by the app holding that replica id.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import resource
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Coroutine, Mapping, Sequence
from typing import Any

from calliope.adapters.files.changes import FileChanges
from calliope.adapters.files.disk import OS_DISK, Disk, FailedLogs
from calliope.adapters.files.feed_index import FeedIndex, reserver
from calliope.adapters.files.fsutil import (
    private_makedirs,
    storage_error,
    storage_errors,
    write_file_atomically,
)
from calliope.adapters.files.group_commit import FlushGate
from calliope.adapters.files.layout import id_directory, log_directory, stream_directory
from calliope.adapters.files.log_handle import LogHandle
from calliope.adapters.files.page_reads import in_range, read_page
from calliope.adapters.files.reader import read_step
from calliope.adapters.files.replica_evidence import check_holds_observed, observed_of
from calliope.adapters.files.replica_listing import ReplicaListing
from calliope.adapters.files.segment_files import Position
from calliope.adapters.files.segment_log import SegmentLog
from calliope.adapters.files.segment_writer import AppendRequest
from calliope.adapters.files.stream_catalog import list_streams
from calliope.adapters.files.stream_kind import check_kind
from calliope.adapters.kinds import other_kind
from calliope.adapters.packing import pack_large_items, pack_quickly
from calliope.adapters.read_only import read_only_refused
from calliope.core.replication import RecordBatch, ReplicaPage
from calliope.errors import (
    AppClosedError,
    ReadOnlyStoreError,
)
from calliope.shell.ports import Durability, NewEvent, RepairReport

__all__ = ["FileEventLog"]


def _handles_bound() -> int:
    """How many logs' state (open files, hints) this process keeps: enough
    for as many streams written at once as an application is likely to
    have (each held log costs two file descriptors), within an eighth of
    the process's file descriptor limit: 1,024, or 128 under the common
    soft limit of 1,024 descriptors. Writers on more streams than this at
    once reopen files between appends."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(128, min(1024, soft // 8))


_HANDLES = _handles_bound()
_NAMES = 128  # streams whose directory, kind and replica ids are cached
_EVICT_AT_MOST = 32  # handles one eviction looks at
_QUICK_READ = 64 * 1024  # bytes appended since the last read that may be read on the loop
_QUICK_LOGS = 16


class FileEventLog:
    """Implements the plain and replica log ports on a directory.

    What this process holds per log (the writer's open files, its group
    committer, read hints) is kept for at most ``_HANDLES`` logs, least
    recently used first out: an app that touches a million streams holds
    the state of a few hundred. A log in use (an append in flight) is never
    evicted; an evicted one is reopened on its next use.
    """

    def __init__(
        self,
        root: str,
        *,
        durability: Durability,
        segment_bytes: int,
        changes: FileChanges,
        read_only: bool = False,
        disk: Disk = OS_DISK,
        feed_index: FeedIndex | None = None,
    ) -> None:
        self._root = root
        self._feed_index = feed_index  # every write takes an entry in it
        self._read_only = read_only
        self._disk = disk
        self._failed: FailedLogs = {}  # logs whose sync failed refuse writes till reopened
        self._durability = durability
        self._segment_bytes = segment_bytes
        self._changes = changes
        self._logs: OrderedDict[tuple[str, str | None], LogHandle] = OrderedDict()
        self._gate = FlushGate()  # (shared by its logs' committers)
        self._directories: OrderedDict[str, str] = OrderedDict()  # stream -> its directory
        self._caches = threading.Lock()  # the caches above are also used in worker threads
        self._replicas = ReplicaListing(self._stream_directory, self._caches, _NAMES)
        self._kinds: OrderedDict[str, bool] = OrderedDict()  # stream -> replicated, once known
        self._closed = False

    # -- where things are -------------------------------------------------------

    def _stream_directory(self, stream_id: str) -> str:
        """Where a stream's logs live (its id hashed once, then cached)."""
        with self._caches:  # also used from worker threads
            directory = self._directories.get(stream_id)
            if directory is None:
                directory = self._directories[stream_id] = stream_directory(self._root, stream_id)
                if len(self._directories) > _NAMES:
                    self._directories.popitem(last=False)
            return directory

    def _segment_log(self, stream_id: str, replica_id: str | None) -> SegmentLog:
        directory = log_directory(self._root, stream_id, replica_id)
        return SegmentLog(
            directory,
            stream_id=stream_id,
            durability=self._durability,
            segment_bytes=self._segment_bytes,
            read_only=self._read_only,
            disk=self._disk,
            failed=self._failed,
            reserve=reserver(self._feed_index, directory),
        )

    reading_log = _segment_log  # a fresh SegmentLog for a reader (close it after)

    def _log(self, stream_id: str, replica_id: str | None) -> LogHandle:
        """This process's handle on a log (LRU-bounded). O(1) amortised."""
        key = (stream_id, replica_id)
        logs = self._logs
        entry = logs.get(key)
        if entry is None:
            if self._closed:
                raise AppClosedError("this store is closed; open it again")
            entry = logs[key] = LogHandle(self._segment_log(stream_id, replica_id), self._gate)
            if len(logs) > _HANDLES:
                self._evict()
        else:
            logs.move_to_end(key)
        return entry

    def _evict(self) -> None:
        """Down to the bound, least recently used first: drop idle handles,
        and close the files of handles not flushing right now (they reopen
        on their next append), so that appends to many streams at once keep
        few files open. A handle still in use is moved to the recent end, so
        that the next eviction does not look at it again soon; one call
        looks at :data:`_EVICT_AT_MOST` handles at most, so that thousands of
        streams written at once (all in use, none to drop) cost O(1) per
        append, not O(streams): the bound is exceeded by the handles in use
        at the time, and restored as they go idle."""
        logs = self._logs
        over = min(len(logs) - _HANDLES, _EVICT_AT_MOST)
        for key in list(itertools.islice(logs, max(over, 0))):
            entry = logs[key]
            if not entry.committer.idle:
                logs.move_to_end(key)  # flushing: its files are in use
                continue
            entry.log.close()
            if entry.users:
                logs.move_to_end(key)
            else:
                del logs[key]

    def _prepare(self, stream_id: str, replica_id: str | None, directory: str) -> None:
        """Create the stream's directory and id files (blocking), once per
        log handle, after checking that the stream is not of the other kind
        (:func:`check_kind`)."""
        check_kind(id_directory(self._root, "streams", stream_id), stream_id, replica_id)
        if replica_id is not None:
            id_path = os.path.join(directory, "id")
            if not os.path.exists(id_path):
                private_makedirs(directory)
                write_file_atomically(id_path, replica_id.encode("utf-8"))
            self._check_not_observed_beyond(stream_id, replica_id)

    def _observed_of(self, stream_id: str, replica_id: str) -> int:
        """The highest sequence of ``replica_id`` the other replicas' last
        versions name (blocking; O(replicas))."""
        others = [r for r in self._replica_ids(stream_id) if r != replica_id]
        return observed_of(replica_id, [self._segment_log(stream_id, r) for r in others])

    def _check_not_observed_beyond(self, stream_id: str, replica_id: str) -> None:
        """Raise unless this replica's log holds all the others observed of
        it (replica_evidence.py; blocking, O(replicas))."""
        own = self._segment_log(stream_id, replica_id)
        check_holds_observed(own, replica_id, self._observed_of(stream_id, replica_id))

    def _replica_ids(self, stream_id: str) -> list[str]:
        """The replicas with a log in this replicated stream (blocking).
        O(replicas); see replica_listing.py."""
        return self._replicas.replica_ids(stream_id)

    # -- writing ----------------------------------------------------------------

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
        if self._read_only:
            raise self._refused(f"writing to stream {stream_id!r}")
        entry = self._log(stream_id, replica_id)
        entry.users += 1
        try:  # (no context manager: this is the hot path of every persist)
            items: Sequence[bytes | Sequence[bytes]]
            quick = pack_quickly(events)
            if quick is not None:
                items, size = quick
            else:  # large: packed off the event loop, large values left uncopied
                plain = [(e.type_name, e.schema_version, e.data) for e in events]
                items = await asyncio.to_thread(pack_large_items, plain)
                size = sum(len(i) if isinstance(i, bytes) else sum(map(len, i)) for i in items)
            if not entry.ready:
                directory = entry.log.directory
                await asyncio.to_thread(self._prepare, stream_id, replica_id, directory)
                entry.ready = True
            batch = await entry.committer.submit(
                AppendRequest(
                    writer, events, items, size, expected_sequence, timestamp_us, observed
                )
            )
        except OSError as error:
            raise storage_error(f"appending to stream {stream_id!r}", error) from error
        finally:
            entry.users -= 1
            if len(self._logs) > _HANDLES:
                self._evict()
        if batch is not None:
            self._changes.fire(stream_id, replica_id)
        return batch

    def append(
        self,
        stream_id: str,
        writer: str,
        events: Sequence[NewEvent],
        *,
        expected_sequence: int | None,
        timestamp_us: int,
    ) -> Coroutine[Any, Any, RecordBatch | None]:
        return self._append(stream_id, None, writer, events, expected_sequence, None, timestamp_us)

    def append_replica(
        self,
        stream_id: str,
        replica_id: str,
        events: Sequence[NewEvent],
        *,
        observed: Mapping[str, int],
        timestamp_us: int,
    ) -> Coroutine[Any, Any, RecordBatch | None]:
        return self._append(
            stream_id, replica_id, replica_id, events, None, dict(observed), timestamp_us
        )

    # -- reading ----------------------------------------------------------------

    async def _check_reading(self, stream_id: str, replicated: bool) -> None:
        """Refuse to read a stream as the other kind (it would find nothing;
        see stream_kind.py). A known kind is remembered: O(1) then."""
        known = self._kinds.get(stream_id)
        if known is None:
            directory = self._stream_directory(stream_id)
            replica = "-" if replicated else None
            with storage_errors(f"reading stream {stream_id!r}"):
                if not await asyncio.to_thread(
                    check_kind, directory, stream_id, replica, reading=True
                ):
                    return  # no kind yet: it may become either
            with self._caches:
                self._kinds[stream_id] = replicated
                if len(self._kinds) > _NAMES:
                    self._kinds.popitem(last=False)
        elif known != replicated:
            raise other_kind(stream_id, replicated=known, reading=True)

    async def last_sequence(self, stream_id: str) -> int:
        """From the log's handle if this process holds one; else from a
        log opened for this look alone (a listing of every stream then
        holds no handle for each)."""
        await self._check_reading(stream_id, False)
        entry = self._logs.get((stream_id, None))
        log = entry.log if entry is not None else self._segment_log(stream_id, None)
        try:
            with storage_errors(f"reading stream {stream_id!r}"):
                return await asyncio.to_thread(log.peek_last)
        finally:
            if entry is None:
                log.close()

    def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        return self._read(stream_id, None, from_sequence, to_sequence)

    def read_replica(
        self, stream_id: str, replica_id: str, from_sequence: int, to_sequence: int | None = None
    ) -> AsyncIterator[list[RecordBatch]]:
        return self._read(stream_id, replica_id, from_sequence, to_sequence)

    async def _read(
        self, stream_id: str, replica_id: str | None, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        await self._check_reading(stream_id, replica_id is not None)
        entry = self._log(stream_id, replica_id)
        log = entry.log
        position = entry.hint(from_sequence)
        if position is None:
            with storage_errors(f"reading stream {log.stream_id!r}"):
                position = await asyncio.to_thread(log.locate, from_sequence)
            if position is None:
                return
        expected: int | None = None
        # The next step is read in a worker thread while the caller decodes
        # this one.
        pending = asyncio.ensure_future(asyncio.to_thread(read_step, log, position))
        try:
            while True:
                with storage_errors(f"reading stream {log.stream_id!r}"):
                    step = await pending
                wanted, expected = in_range(
                    log, step, position, expected, from_sequence, to_sequence
                )
                done = to_sequence is not None and expected is not None and expected > to_sequence
                position = step.position
                if step.at_end or done:
                    if step.at_end and expected is not None:
                        entry.remember(expected, position)
                    if wanted:
                        yield wanted
                    return
                pending = asyncio.ensure_future(asyncio.to_thread(read_step, log, position))
                if wanted:
                    yield wanted
        finally:
            if not pending.done():
                pending.cancel()

    def list_streams(self, prefix: str | None) -> AsyncIterator[list[tuple[str, bool]]]:
        return list_streams(self._root, prefix)

    async def replicas(self, stream_id: str) -> list[str]:
        await self._check_reading(stream_id, True)
        with storage_errors(f"listing the replicas of stream {stream_id!r}"):
            return await asyncio.to_thread(self._replica_ids, stream_id)

    async def replica_version(self, stream_id: str, replica_id: str) -> dict[str, int]:
        log = self._log(stream_id, replica_id).log
        with storage_errors(f"reading replica {replica_id!r} of stream {stream_id!r}"):
            return await asyncio.to_thread(log.peek_last_version)

    async def read_new(
        self,
        stream_id: str,
        known: Mapping[str, int],
        *,
        limit: int,
        exclude: Collection[str] = (),
    ) -> list[ReplicaPage]:
        """List the replicas, read a page of each from what is known: in one
        worker-thread hop, or at once on the event loop when that is surely
        quick (every log's position is known and little was appended: the
        usual case of a persist's or a live query's read). O(replicas + page)."""
        await self._check_reading(stream_id, True)
        logs = dict(self._logs)  # read-only in the worker thread
        known = dict(known)
        listed: list[str] | None = None

        def read_all() -> list[tuple[ReplicaPage, Position | None, int]]:
            results = []
            for replica in self._replica_ids(stream_id) if listed is None else listed:
                if replica in exclude:
                    continue
                entry = logs.get((stream_id, replica))
                first = known.get(replica, 0) + 1
                if entry is None:  # reading needs no state: a fresh handle will do
                    log, position = self._segment_log(stream_id, replica), None
                else:
                    log, position = entry.log, entry.hint(first)
                batches, more, hint, hint_sequence = read_page(log, position, first, limit)
                results.append((ReplicaPage(replica, batches, more), hint, hint_sequence))
            return results

        with storage_errors(f"reading stream {stream_id!r}"):
            listed = self._little_to_read(stream_id, known, exclude)
            if listed is not None:
                results = read_all()
            else:
                results = await asyncio.to_thread(read_all)
        pages = []
        for page, hint, hint_sequence in results:
            if hint is not None:
                self._log(stream_id, page.replica).remember(hint_sequence, hint)
            if page.batches:
                pages.append(page)
        return pages

    def _little_to_read(
        self, stream_id: str, known: Mapping[str, int], exclude: Collection[str]
    ) -> list[str] | None:
        """The replicas, if reading on from ``known`` is surely quick: this
        process read every replica log before (a hint says where it
        stopped), few logs, and under ``_QUICK_READ`` bytes appended since;
        else None. One ``stat`` per log, plus a listing when the set of
        replica logs changed."""
        replicas = self._replicas.cached(stream_id)
        if replicas is None or len(replicas) > _QUICK_LOGS:
            return None
        pending = 0
        for replica in replicas:
            if replica in exclude:
                continue
            entry = self._logs.get((stream_id, replica))
            position = None if entry is None else entry.hint(known.get(replica, 0) + 1)
            if entry is None or position is None:
                return None
            try:
                size = os.stat(entry.log.path(position.segment)).st_size
            except FileNotFoundError:
                return None
            pending += size - position.offset
            if pending > _QUICK_READ:
                return None
        return replicas

    def _refused(self, what: str) -> ReadOnlyStoreError:
        return read_only_refused(self._root, what)

    async def repair(self, stream_id: str, replica_id: str | None) -> RepairReport:
        """Keep the log's intact prefix and move the rest aside (repair.py),
        waiting for appends in flight. O(size of the log)."""
        if self._read_only:
            raise self._refused(f"repairing stream {stream_id!r}")
        directory = log_directory(self._root, stream_id, replica_id)
        if not await asyncio.to_thread(os.path.isdir, directory):
            return RepairReport(stream_id, replica_id, 0)  # no such log: nothing to repair
        entry = self._log(stream_id, replica_id)
        entry.users += 1
        try:
            with storage_errors(f"repairing stream {stream_id!r}"):
                observed = 0
                if replica_id is not None:
                    observed = await asyncio.to_thread(self._observed_of, stream_id, replica_id)
                repaired = await asyncio.to_thread(entry.log.repair, observed=observed)
        finally:
            entry.users -= 1
        entry.hints.clear()
        return RepairReport(
            stream_id,
            replica_id,
            repaired.last_sequence,
            tuple(repaired.moved_aside),
            repaired.bytes_moved,
        )

    async def aclose(self) -> None:
        """Let queued appends finish, refuse new ones, close every file."""
        self._closed = True
        entries = list(self._logs.values())
        for entry in entries:
            await entry.committer.aclose()
        for entry in entries:
            entry.log.close()
        self._logs.clear()
