"""Repairing a damaged log, when the user asks for it: losing what is damaged.

Damage to acknowledged data is a CorruptJournalError until the user
repairs the log explicitly. Repair keeps the longest intact prefix of the
log (from sequence 1, batches following one another, every finished
segment ending in its seal) and moves everything after it aside: the rest
of the segment where the damage starts into a ``.aside`` file, and every
later segment (and its index) renamed to ``.aside``. Nothing is deleted.
The committed extent is then recorded for what remains, so the log is
readable and writable again; its next event takes the sequence after the
intact prefix. A replica's log is not repaired below what other replicas
have observed of it (``observed``): its next events would reuse sequence
numbers they saw, and their own events, which follow the lost ones, could
never be delivered in causal order.

Contract: call under the log's lock (segment_writer.py). O(size of the log).
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

from calliope.adapters.files.disk import sync
from calliope.adapters.files.extent import write_extent
from calliope.adapters.files.framing import SEGMENT_HEADER_SIZE
from calliope.adapters.files.fsutil import fsync_directory
from calliope.adapters.files.segment_files import SegmentFiles
from calliope.adapters.files.tail_recovery import Tail, catch_up, move_aside
from calliope.errors import CorruptJournalError

__all__ = ["Repaired", "repair_log"]

logger = logging.getLogger("calliope.files")


class Repaired(NamedTuple):
    """What a repair kept and moved aside."""

    last_sequence: int  # the last sequence the log holds now
    moved_aside: list[str]  # the files that now hold what was moved
    bytes_moved: int


class _Plan(NamedTuple):
    kept: Tail  # the end of the intact prefix
    cut: bool  # the segment ``kept.segment`` holds more after ``kept.end``
    later: list[int]  # the segments after it, all moved aside


def repair_log(files: SegmentFiles, lock_fd: int, *, observed: int = 0) -> Repaired:
    """Keep the intact prefix of the log, move the rest aside, record the
    extent of what remains (see the module's contract). Raises
    CorruptJournalError, changing nothing, if the prefix ends before
    ``observed``."""
    plan = _plan(files)
    kept = plan.kept
    if kept.last_sequence < observed:
        raise CorruptJournalError(
            f"the log in {files.directory} (stream {files.stream_id!r}) is intact only up to "
            f"sequence {kept.last_sequence}, but other replicas have observed its events up "
            f"to {observed}: repairing it would give their sequence numbers to new events, "
            f"and the other replicas' later events could never be delivered in causal order. "
            f"Nothing was changed. Restore the log from a backup",
            path=files.path(kept.segment),
            offset=kept.end,
        )
    moved: list[str] = []
    count = 0
    if plan.cut:
        fd = os.open(files.path(kept.segment), os.O_RDWR)
        try:
            count += os.fstat(fd).st_size - kept.end
            moved.append(
                move_aside(
                    files,
                    fd,
                    kept.segment,
                    kept.end,
                    "a repair asked for; the events there are lost to readers",
                )
            )
        finally:
            os.close(fd)
    for segment in plan.later:
        count += _rename_aside(files, segment, moved)
    write_extent(files.disk, lock_fd, kept.extent(files.synced))
    sync(files.disk.fsync, lock_fd)
    if moved:
        logger.error(
            "repaired stream %r in %s: kept sequences 1..%d, moved %d bytes aside to %s",
            files.stream_id,
            files.directory,
            kept.last_sequence,
            count,
            ", ".join(moved),
        )
    return Repaired(kept.last_sequence, moved, count)


def _plan(files: SegmentFiles) -> _Plan:
    """Where the intact prefix ends, read without changing anything."""
    kept = Tail(1, -1, SEGMENT_HEADER_SIZE, 0)
    segments = files.segments()
    for index, segment in enumerate(segments):
        if segment != kept.last_sequence + 1 or (index and not kept.sealed):
            return _Plan(kept, False, segments[index:])  # one missing before it, or no seal
        fd = os.open(files.path(segment), os.O_RDONLY)
        try:
            tail = Tail(segment, -1, SEGMENT_HEADER_SIZE, segment - 1)
            size = os.fstat(fd).st_size
            try:
                intact = size >= SEGMENT_HEADER_SIZE and catch_up(files, fd, tail, size)
            except CorruptJournalError:  # a batch out of sequence: keep what precedes it
                intact = False
        finally:
            os.close(fd)
        kept = tail
        if not intact:
            return _Plan(kept, size > tail.end, segments[index + 1 :])
    return _Plan(kept, False, [])


def _rename_aside(files: SegmentFiles, segment: int, moved: list[str]) -> int:
    """Rename a whole segment (and its index) aside; its size in bytes."""
    path = files.path(segment)
    size = os.stat(path).st_size
    aside = f"{path[: -len('.seg')]}.aside"
    os.rename(path, aside)
    index = files.index_path(segment)
    if os.path.exists(index):
        os.rename(index, f"{index}.aside")
    fsync_directory(files.directory)
    moved.append(aside)
    return size
