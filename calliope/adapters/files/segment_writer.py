"""Appending to a segment log: the writer, under the lock.

Any process may append. A writer holds an exclusive ``flock`` on the log's
``lock`` file for its whole catch-up, check, write, fsync step, so sequences
stay contiguous and ``expected_sequence`` holds across processes.

Contract: each request is all-or-nothing, checked in order; the accepted
ones are written with one write and one fsync (``durability="fsync"``),
consecutive requests of one writer sharing a frame. Only after the fsync
does the writer record the log's committed extent in the lock file
(extent.py), and readers deliver nothing past it. A full segment is
sealed and the log continues in a new one. A write takes its feed entry
(feed_index.py) under the lock, after checking its requests and before
writing, and every frame it writes carries the entry's number. The methods block. Files are
written and synced through the log's
:class:`~calliope.adapters.files.disk.Disk`.

Failures. A failed *write* (a full disk, an I/O error) raises StorageError
for every request of the group and leaves nothing behind: the file is cut
back to its last intact frame (if even that fails, the next append finds
the torn end and cuts it), and the next append, once the fault has
cleared, works. A failed *sync* also raises StorageError for the whole
group, and the frames it should have made durable are cut likewise (best
effort), but the log then refuses every further write, in this store, until
the store is reopened (close the app, open it again): the kernel may have
dropped the unsynced pages, so a retried sync could succeed without them.
The same holds for a failed sync while sealing or creating a segment. The
reopened writer re-learns the log's end from the files, as after a crash:
the unacknowledged frames are normally gone (cut), but if the cut did not
reach the disk they may be back, whole (each frame is all-or-nothing).
Either way nothing acknowledged is lost and sequences stay contiguous.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from calliope.adapters.files.batch_format import SEAL, batch_frame_parts
from calliope.adapters.files.disk import FailedLogs, SyncFailed, sync
from calliope.adapters.files.extent import Extent, lock_path, write_extent
from calliope.adapters.files.fsutil import private_makedirs, storage_error
from calliope.adapters.files.repair import Repaired, repair_log
from calliope.adapters.files.segment_files import SegmentFiles
from calliope.adapters.files.segment_index import add_index_entry
from calliope.adapters.files.tail_recovery import Tail, next_segment, refresh_tail
from calliope.core.replication import RecordBatch, event_version, first_version
from calliope.errors import ConcurrencyError, EventEncodingError, StorageError
from calliope.shell.ports import Durability, NewEvent

__all__ = ["AppendRequest", "AppendResult", "Reserve", "SegmentWriter"]

_MAX_FRAME = 256 * 1024 * 1024
_QUICK_BYTES = 256 * 1024  # more to write or catch up with: a worker thread does it
_JOIN_AT_MOST = 1024 * 1024  # larger writes go from the parts (pwritev), not a joined copy
_IOV_MAX = 512


def _pwrite_parts(
    pwritev: Callable[[int, Sequence[memoryview], int], int],
    fd: int,
    parts: list[bytes],
    offset: int,
) -> None:
    """Write ``parts`` one after another at ``offset`` with ``pwritev``,
    a bounded number of buffers per call, resuming after short writes.
    O(parts)."""
    views = [memoryview(part) for part in parts if part]
    head = 0  # views before it are written
    while head < len(views):
        written = pwritev(fd, views[head : head + _IOV_MAX], offset)
        offset += written
        while head < len(views) and written >= len(views[head]):
            written -= len(views[head])
            head += 1
        if head < len(views) and written:
            views[head] = views[head][written:]


class AppendRequest(NamedTuple):
    """One atomic batch to append: the events and their packed items."""

    writer: str
    events: Sequence[NewEvent]
    # msgpack of [type_name, schema_version, data] per event; a large one as
    # the chunks that concatenate to it (packing.pack_chunks)
    items: Sequence[bytes | Sequence[bytes]]
    size: int  # total bytes of items
    expected_sequence: int | None
    timestamp_us: int
    # Replica logs: what the writer has seen of other replicas, merged into
    # the version of the first event. None for plain logs.
    observed: Mapping[str, int] | None = None


AppendResult = RecordBatch | None | BaseException

Reserve = Callable[[int, int], int]
"""Takes a write's feed entry: (first sequence, events) -> its number."""


class _PendingFrame:
    """The requests going into one frame: they continue one another."""

    __slots__ = ("first_sequence", "items", "size", "timestamp_us", "version", "writer")

    def __init__(
        self, first_sequence: int, writer: str, version: dict[str, int], timestamp_us: int
    ) -> None:
        self.first_sequence = first_sequence
        self.writer = writer
        self.version = dict(version)
        self.timestamp_us = timestamp_us  # the first request's: all its events share it
        self.items: list[bytes | Sequence[bytes]] = []
        self.size = 0

    def add(self, items: Sequence[bytes | Sequence[bytes]], size: int) -> None:
        self.items.extend(items)
        self.size += size

    def frame(self, feed_entry: int | None) -> list[bytes]:
        return batch_frame_parts(
            self.first_sequence,
            self.writer,
            self.version,
            self.timestamp_us,
            self.items,
            feed_entry,
        )


class SegmentWriter:
    """This process's writer for one log: the lock file and the open tail."""

    def __init__(
        self,
        files: SegmentFiles,
        *,
        durability: Durability,
        segment_bytes: int,
        index_every: int,
        failed: FailedLogs | None = None,
        reserve: Reserve | None = None,
    ) -> None:
        """``failed``: the store's logs whose sync failed (this one refuses
        to write while it is listed there); a new empty one by default.
        ``reserve``: takes the feed entry of a write (first sequence, event
        count) -> entry number; None: the log's batches get none."""
        self._reserve = reserve
        self._files = files
        self._disk = files.disk
        self._failed: FailedLogs = {} if failed is None else failed
        self._durability = durability
        self._segment_bytes = segment_bytes
        self._index_every = index_every
        self._lock_fd: int | None = None
        self._tail: Tail | None = None
        # One thread at a time uses the lock file and the tail: flock is
        # held per open file, so it does not keep this process's threads apart.
        self._busy = threading.Lock()

    def _lock(self) -> int:
        if self._lock_fd is None:
            directory = self._files.directory
            private_makedirs(directory)
            self._lock_fd = os.open(lock_path(directory), os.O_RDWR | os.O_CREAT, 0o600)
        return self._lock_fd

    def close(self) -> None:
        """Close the files (they reopen on the next append). A refusal to
        write stays: it lasts as long as the store's ``failed`` does."""
        with self._busy:
            if self._tail is not None:
                os.close(self._tail.fd)
                self._tail = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def try_append(self, requests: Sequence[AppendRequest]) -> list[AppendResult] | None:
        """Append at once if that is quick: None (nothing done) if it would
        wait or work for long. It would when another process holds the lock,
        when the tail must be found or caught up with more than a little that
        others appended, when the segment must roll, or when the requests are
        large; :meth:`append` does it then, in a worker thread."""
        if self._failed:
            self._check_usable()
        tail = self._tail
        if tail is None or self._lock_fd is None or tail.end >= self._segment_bytes:
            return None
        if sum(request.size for request in requests) > _QUICK_BYTES:
            return None
        if not self._busy.acquire(blocking=False):
            return None
        try:
            lock = self._lock_fd
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            try:
                grown = os.fstat(tail.fd).st_size - tail.end
            except OSError:
                grown = _QUICK_BYTES + 1
            if grown > _QUICK_BYTES or tail.sealed:
                fcntl.flock(lock, fcntl.LOCK_UN)
                return None
            try:
                return self._append_then_unlock(lock, requests)
            except SyncFailed as error:  # (raised by what creates a segment)
                raise self._refuse(
                    f"syncing the files of {self._files.directory}", error
                ) from error
        finally:
            self._busy.release()

    def append(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Append each request atomically, waiting for the lock: one write and
        one fsync for all of them."""
        if self._failed:
            self._check_usable()
        with self._busy:
            try:
                lock = self._lock()
                fcntl.flock(lock, fcntl.LOCK_EX)
                return self._append_then_unlock(lock, requests)
            except SyncFailed as error:  # (raised by what creates a directory or segment)
                raise self._refuse(
                    f"syncing the files of {self._files.directory}", error
                ) from error

    def repair(self, *, observed: int = 0) -> Repaired:
        """Keep the log's intact prefix and move the rest aside, waiting for
        the lock (repair.py); not below ``observed``. O(size of the log). A
        log that refused writes after a failed sync stays refused (reopen it
        first)."""
        if self._failed:
            self._check_usable()
        with self._busy:
            lock = self._lock()
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._forget_tail()
                return repair_log(self._files, lock, observed=observed)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def settle(self) -> bool:
        """If nobody is writing the log right now, do what a writer does
        before it appends: commit the intact frames a dead writer left past
        the committed extent (fsync, then record it), move a torn end aside,
        or raise CorruptJournalError for damage to acknowledged data. False
        (nothing done) if a writer is busy, the log refuses writes after a
        failed sync, or the lock file cannot be opened for writing (a
        read-only store). O(bytes past the extent)."""
        if self._failed.get(self._files.directory) is not None:
            return False
        if not self._busy.acquire(blocking=False):
            return False
        try:
            try:
                lock = self._lock()
            except PermissionError:
                return False
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            try:
                self._append_locked([])
            except BaseException:
                self._forget_tail()
                raise
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            return True
        finally:
            self._busy.release()

    def _check_usable(self) -> None:
        """Raise StorageError if a sync of this log failed in this store."""
        refusal = self._failed.get(self._files.directory)
        if refusal is not None:
            raise StorageError(refusal)

    def _refuse(self, action: str, error: OSError) -> StorageError:
        """Refuse every further write to this log (in this store), for a
        failed sync; the error to raise for it."""
        stream_id = self._files.stream_id
        self._failed[self._files.directory] = (
            f"the log of stream {stream_id!r} in {self._files.directory} refuses writes "
            f"since {action} failed ({error}): what was written since its last successful "
            f"sync may not be on disk, and a retried sync could not tell. Check the device, "
            f"then close the app and open it again to write to this stream"
        )
        return storage_error(
            action,
            error,
            consequence=(
                "the batch was not acknowledged (it may or may not survive, as in a crash), "
                "and this log refuses further writes until it is reopened: close the app "
                "and open it again"
            ),
        )

    def _failed_write(self, tail: Tail, error: OSError) -> StorageError:
        """Cut what a failed write or sync left after the last intact frame
        (best effort); the error to raise for it. A failed sync refuses
        further writes."""
        with contextlib.suppress(OSError):
            self._disk.ftruncate(tail.fd, tail.end)
        path = self._files.path(tail.segment)
        if isinstance(error, SyncFailed):
            return self._refuse(f"syncing {path}", error)
        return storage_error(f"writing to {path}", error, consequence="the batch was not written")

    def _append_then_unlock(
        self, lock: int, requests: Sequence[AppendRequest]
    ) -> list[AppendResult]:
        try:
            return self._append_locked(requests)
        except BaseException:
            self._forget_tail()  # re-learn the tail from the files next time
            raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def _forget_tail(self) -> None:
        if self._tail is not None:
            with contextlib.suppress(OSError):
                os.close(self._tail.fd)
            self._tail = None

    def _append_locked(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Check each request in order; write the accepted ones, consecutive
        requests of one writer sharing a frame (still all-or-nothing each:
        a frame is all-or-nothing), with one write and one fsync."""
        lock = self._lock()
        tail, self._tail = self._tail, None  # refresh_tail closes it if it fails
        tail = self._tail = refresh_tail(self._files, tail, lock)
        if tail.end >= self._segment_bytes:
            tail = self._tail = self._roll(tail)
            write_extent(
                self._disk, lock, tail.extent(self._files.synced)
            )  # the seal is committed: readers may cross it
        stream_id = self._files.stream_id
        results: list[AppendResult] = []
        frames: list[_PendingFrame] = []  # in order; the last one may still grow
        sequence = tail.last_sequence
        version = tail.last_version
        for request in requests:
            expected = request.expected_sequence
            if expected is not None and expected != sequence:
                results.append(
                    ConcurrencyError(
                        f"stream {stream_id!r} is at sequence {sequence}, not the expected "
                        f"{expected}; nothing was written. Read the new events and retry",
                        stream_id=stream_id,
                        expected=expected,
                        actual=sequence,
                    )
                )
                continue
            count = len(request.items)
            if not count:
                results.append(None)
                continue
            size = request.size
            if size > _MAX_FRAME - 4096:
                results.append(
                    EventEncodingError(
                        f"a batch of {count} events encodes to {size:,} bytes, over the limit "
                        f"of {_MAX_FRAME - 4096:,}; persist it in smaller batches"
                    )
                )
                continue
            writer = request.writer
            observed = request.observed
            first = first_version(version, writer, observed)
            pending = frames[-1] if frames else None
            # Does it continue the pending frame (its first event follows the
            # frame's last one, as the frame's later events do)? Without
            # observed versions (plain logs) it always does.
            follows = pending is not None and (
                not observed or first == event_version(version, writer, 1)
            )
            if (
                pending is None
                or not follows
                or pending.writer != writer
                or pending.size + size > _MAX_FRAME // 2
            ):
                pending = _PendingFrame(sequence + 1, writer, first, request.timestamp_us)
                frames.append(pending)
            pending.add(request.items, size)
            results.append(
                # NewEvent is (type_name, schema_version, data): the item shape.
                RecordBatch(sequence + 1, writer, first, pending.timestamp_us, request.events)
            )
            sequence += count
            version = first if count == 1 else event_version(first, writer, count - 1)
        if frames:
            # The feed entry is taken now, under the lock and before anything
            # is written (feed_index.py); every frame of the write carries it.
            first_sequence = frames[0].first_sequence
            entry = None
            if self._reserve is not None:
                entry = self._reserve(first_sequence, sequence - first_sequence + 1)
                results = [
                    r._replace(feed_entry=entry) if isinstance(r, RecordBatch) else r
                    for r in results
                ]
            parts: list[bytes] = []
            index_entry: tuple[int, int] | None = None
            written = 0
            for frame in frames:
                if index_entry is None and tail.end + written - tail.index_offset >= (
                    self._index_every
                ):
                    index_entry = (frame.first_sequence, tail.end + written)
                rendered = frame.frame(entry)
                parts.extend(rendered)
                written += sum(map(len, rendered))
            self._write(tail, parts, lock, sequence)
            tail.last_sequence = sequence
            tail.last_version = version
            if index_entry is not None and add_index_entry(self._files, tail.segment, index_entry):
                tail.index_offset = index_entry[1]
        return results

    def _write(self, tail: Tail, parts: list[bytes], lock: int, last_sequence: int) -> None:
        """Write ``parts`` at the tail's end, sync them (per the durability),
        and only then record the new committed extent in ``lock``: from then
        on readers deliver them (extent.py). On failure, raise StorageError,
        leaving no partial, unsynced or uncommitted frame behind; a failed
        sync refuses further writes."""
        disk = self._disk
        size = sum(map(len, parts))
        try:
            if size <= _JOIN_AT_MOST:
                data = b"".join(parts) if len(parts) > 1 else parts[0]
                written = 0
                while written < size:
                    written += disk.pwrite(tail.fd, data[written:], tail.end + written)
            else:  # large: written from the parts' own buffers, never joined
                _pwrite_parts(disk.pwritev, tail.fd, parts, tail.end)
            if self._durability == "fsync":
                sync(disk.fdatasync, tail.fd)
            committed = Extent(tail.segment, tail.end + size, last_sequence, self._files.synced)
            write_extent(disk, lock, committed)
        except OSError as error:
            raise self._failed_write(tail, error) from error
        tail.end += size

    def _roll(self, tail: Tail) -> Tail:
        """Seal the full segment and continue in a new one. A failed write
        or sync raises StorageError as :meth:`_write` does."""
        if not tail.sealed:
            disk = self._disk
            try:
                if disk.pwrite(tail.fd, SEAL, tail.end) != len(SEAL):
                    raise OSError(errno.ENOSPC, "short write of a segment's seal")
                sync(disk.fdatasync, tail.fd)
            except OSError as error:
                raise self._failed_write(tail, error) from error
        return next_segment(self._files, tail)
