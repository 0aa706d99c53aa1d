"""One append-only log on disk, put together from its pieces.

- segment_files.py: the directory, the segments and what a frame holds;
- segment_index.py: the sparse index that says where to start reading;
- segment_frames.py: reading frames of an open segment, without the lock;
- tail_recovery.py: finding the end of the log, cutting a torn write;
- segment_writer.py: appending under the writer lock;
- reader.py: reading the log a step at a time, without the lock.

Contract: a ``SegmentLog`` owns no state beyond its writer's lock file and
open tail (closed by ``close``). A failed write or sync is StorageError, and
after a failed sync the log refuses writes until the store is reopened
(segment_writer.py). Readers take no lock and never cut
anything: they stop at an incomplete tail (someone may be writing it).
Nothing is ever skipped: damage is CorruptJournalError, naming the file and
offset, for readers and writers alike. The methods block; the file journal
calls them inline when they cannot wait on another process, else from a
worker thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from calliope.adapters.files.disk import OS_DISK, Disk, FailedLogs, SyncFailed
from calliope.adapters.files.extent import DAMAGED, read_extent_record
from calliope.adapters.files.repair import Repaired
from calliope.adapters.files.segment_files import Position, SegmentFiles
from calliope.adapters.files.segment_index import locate
from calliope.adapters.files.segment_writer import (
    AppendRequest,
    AppendResult,
    Reserve,
    SegmentWriter,
)
from calliope.adapters.files.tail_recovery import peek_last, peek_last_version
from calliope.shell.ports import Durability

__all__ = ["SegmentLog"]

logger = logging.getLogger("calliope.files")


class SegmentLog:
    """The files of one log and this process's writer for it."""

    def __init__(
        self,
        directory: str,
        *,
        stream_id: str,
        durability: Durability,
        segment_bytes: int,
        index_every: int = 64 * 1024,
        read_only: bool = False,
        disk: Disk = OS_DISK,
        failed: FailedLogs | None = None,
        reserve: Reserve | None = None,
    ) -> None:
        """``read_only``: never settle (its readers leave the log as it is);
        ``disk``: the OS calls its writer makes; ``failed``: the store's logs
        whose sync failed (see segment_writer.py), a new one if None;
        ``reserve``: takes a write's feed entry (segment_writer.py)."""
        self._files = SegmentFiles(directory, stream_id, disk, durability == "fsync")
        self._read_only = read_only
        self._writer = SegmentWriter(
            self._files,
            durability=durability,
            segment_bytes=segment_bytes,
            index_every=index_every,
            failed=failed,
            reserve=reserve,
        )

    @property
    def files(self) -> SegmentFiles:
        return self._files

    @property
    def directory(self) -> str:
        return self._files.directory

    @property
    def stream_id(self) -> str:
        return self._files.stream_id

    def path(self, segment: int) -> str:
        return self._files.path(segment)

    def segments(self) -> list[int]:
        """First sequences of the segments, ascending ([] if the log is empty)."""
        return self._files.segments()

    def locate(self, sequence: int) -> Position | None:
        """Where to start reading to find ``sequence`` (None: the log is empty)."""
        return locate(self._files, sequence)

    def peek_last(self) -> int:
        """The last committed sequence, read without the lock (0 if empty).
        If the files hold more than the committed extent and no writer is
        busy, the log is settled first (as a reader at the end does), so
        this agrees with what a query then returns; so is a log whose extent
        record is damaged (a writer records it again, or raises
        CorruptJournalError). O(1) but for that."""
        extent = read_extent_record(self._files.directory)
        if extent is DAMAGED and not self._read_only:
            self.try_settle()
        elif extent is not None and not self._read_only:
            try:
                size = os.stat(self._files.path(extent.segment)).st_size
            except FileNotFoundError:
                size = 0
            if size > extent.end:
                self.settle()
        return peek_last(self._files)

    def peek_last_version(self) -> dict[str, int]:
        """The version of the last committed event, read without the lock."""
        return peek_last_version(self._files)

    def try_append(self, requests: Sequence[AppendRequest]) -> list[AppendResult] | None:
        """Append if the lock is free right now; None (nothing done) if another
        process holds it."""
        return self._writer.try_append(requests)

    def append(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Append each request atomically, waiting for the lock: one write and
        one fsync for all of them."""
        return self._writer.append(requests)

    def repair(self, *, observed: int = 0) -> Repaired:
        """Keep the intact prefix, not below ``observed``; move the rest
        aside (repair.py)."""
        return self._writer.repair(observed=observed)

    def settle(self) -> bool:
        """Commit what a dead writer left past the committed extent, if no
        writer is busy (see :meth:`SegmentWriter.settle`); True if done.
        Never on a store opened read-only: its readers leave it as it is."""
        return not self._read_only and self._writer.settle()

    def try_settle(self) -> bool:
        """:meth:`settle` for a reader, which can do without it: a write that
        fails (a full disk) is logged and taken as not done, and the caller
        reads as a read-only reader does. A failed sync still raises
        (StorageError upstream): what it should have made durable may not be."""
        try:
            return self.settle()
        except SyncFailed:
            raise
        except OSError as error:
            logger.warning(
                "could not record the committed extent of %s while reading it (%s); "
                "reading its intact frames",
                self._files.directory,
                error,
            )
            return False

    def close(self) -> None:
        """Close the writer's files (they reopen on the next append)."""
        self._writer.close()
