"""Reading a segment log without its lock: one step at a time."""

from __future__ import annotations

import os
from typing import NamedTuple

from calliope.adapters.files.batch_format import decode_batch
from calliope.adapters.files.damage import EXTENT_DAMAGED_TOO, cut_short, damaged, unsealed
from calliope.adapters.files.extent import DAMAGED, Extent, read_extent_record, writer_busy
from calliope.adapters.files.framing import (
    FRAME_HEADER,
    SEGMENT_HEADER_SIZE,
    Stop,
    intact_frame_at,
)
from calliope.adapters.files.segment_files import Position
from calliope.adapters.files.segment_frames import check_damage, read_window
from calliope.adapters.files.segment_log import SegmentLog
from calliope.core.replication import RecordBatch
from calliope.errors import CorruptJournalError

__all__ = ["ReadStep", "read_step"]


class ReadStep(NamedTuple):
    """One step of a reader: batches found, where to continue, and whether
    the reader has reached the end of what is committed now."""

    batches: list[RecordBatch]
    position: Position
    at_end: bool


def read_step(
    log: SegmentLog,
    position: Position,
    *,
    settle: bool = True,
    limit: int | None = None,
    window: int | None = None,
) -> ReadStep:
    """Read the committed batches at ``position`` (blocking; no lock taken).

    Only frames up to the log's committed extent are read (extent.py): a
    frame past it may still wait for its fsync, so it is not delivered yet.
    Anything unusable up to the extent is damage to acknowledged data
    (CorruptJournalError): a bad frame, a file shorter than its committed
    end (the intact frames before the cut are delivered first, and the
    error names where they end, as a repair would cut), a missing segment,
    a finished segment without its seal. Moves to
    the next segment after a seal. A log without an extent (written by an
    older Calliope) is read as before: up to the first unusable frame of its
    last segment. A log whose extent record is damaged is read likewise, but
    an unusable end of its last segment is damage, as it is to a writer
    (:data:`~calliope.adapters.files.damage.EXTENT_DAMAGED_TOO`), unless a
    writer holds the lock (its write in progress).

    A reader at the committed end that finds more bytes past it, while no
    writer is busy, settles the log (``SegmentLog.settle``: a dead writer's
    intact frames are committed, a torn end moved aside) and reads again.

    ``limit``: decode at most that many batches (a page reader asks for
    what it still needs; the rest of the window is read again next step).
    ``window``: bytes to read first (segment_frames.read_window).
    """
    extent = read_extent_record(log.directory)
    if extent is DAMAGED:
        # Nothing says how far the frames are committed. A reader of a
        # writable store does what a writer does first: the extent is
        # recorded again over intact frames, or an unusable end is
        # CorruptJournalError. Otherwise (read-only, a writer busy) the
        # intact frames are read, and an unusable end is that same error.
        if settle and log.try_settle():
            return read_step(log, position, settle=False, limit=limit, window=window)
        return _legacy_step(log, position, extent_damaged=True)
    if extent is None:
        return _legacy_step(log, position)
    try:
        return _committed_step(log, position, extent, settle, limit, window)
    except CorruptJournalError:
        # Written with durability="flush", the extent is no evidence: a
        # power loss may have taken what it covers. A writer settles that
        # (logged at error level); then read again.
        if extent.synced or not settle or not log.settle():
            raise
        return read_step(log, position, settle=False, limit=limit, window=window)


def _committed_step(
    log: SegmentLog,
    position: Position,
    extent: Extent,
    settle: bool,
    limit: int | None,
    window: int | None = None,
) -> ReadStep:
    """:func:`read_step` for a log with a committed extent."""
    committed = extent.committed_end(position.segment)
    if committed == 0 or (committed is not None and position.offset >= committed):
        # Nothing (more) committed here yet; bytes past the extent are a
        # writer's at work, or a dead writer's: settle those, read again.
        if settle and _grown_past(log, position) and log.settle():
            return read_step(log, position, settle=False)
        return ReadStep([], position, True)
    try:
        fd = os.open(log.path(position.segment), os.O_RDONLY)
    except FileNotFoundError:
        raise damaged(
            log.files, position.segment, position.offset, "the segment file is missing"
        ) from None
    try:
        size = os.fstat(fd).st_size
        short = committed is not None and size < committed  # truncated: read what is left
        end = size if committed is None or short else committed
        found = _frames(log, fd, position, end, limit, window)
    finally:
        os.close(fd)
    here = Position(position.segment, found.offset)
    if found.sealed:
        after = _segment_after(log, position.segment)
        if after is not None:
            return ReadStep(found.batches, Position(after, SEGMENT_HEADER_SIZE), False)
        if committed is None:  # the extent lies in a later segment
            raise damaged(
                log.files, here.segment, here.offset, "the segment after this one is missing"
            )
        return ReadStep(found.batches, here, not found.batches)  # the next is being created
    at_committed_end = found.reached and found.stop is Stop.END
    if found.batches and (short or not at_committed_end):
        return ReadStep(found.batches, here, False)  # more to read (or damage, next step)
    if short:  # (committed is not None)
        raise cut_short(log.files, here.segment, here.offset, size, committed or 0)
    if at_committed_end:
        if committed is None:
            raise unsealed(log.files, here.segment, here.offset)
        if settle and size > end and log.settle():
            if found.batches:
                return ReadStep(found.batches, here, False)
            return read_step(log, position, settle=False)
        return ReadStep(found.batches, here, True)
    raise damaged(log.files, here.segment, here.offset, "the frame there is unusable")


def _grown_past(log: SegmentLog, position: Position) -> bool:
    """Whether the segment at ``position`` holds bytes past it."""
    try:
        return os.stat(log.path(position.segment)).st_size > position.offset
    except FileNotFoundError:
        return False


def _legacy_step(log: SegmentLog, position: Position, extent_damaged: bool = False) -> ReadStep:
    """:func:`read_step` for a log without a committed extent, or whose
    extent record is damaged (``extent_damaged``)."""
    try:
        fd = os.open(log.path(position.segment), os.O_RDONLY)
    except FileNotFoundError:
        return ReadStep([], position, True)
    try:
        step, stop = _legacy_frames(log, fd, position)
        if step is not None:
            return step
        # Nothing more here. If a later segment exists, this one was sealed
        # before it was created: read again, and the seal must be here now.
        if _segment_after(log, position.segment) is None:
            if stop is not Stop.END and extent_damaged:
                return _unusable_end(log, fd, position)
            if stop is not Stop.END:
                check_damage(fd, log.path(position.segment), position.offset)
            return ReadStep([], position, True)
        step, _ = _legacy_frames(log, fd, position)
        if step is not None:
            return step
        raise unsealed(log.files, position.segment, position.offset)
    finally:
        os.close(fd)


def _unusable_end(log: SegmentLog, fd: int, position: Position) -> ReadStep:
    """The last segment of a log whose extent record is damaged holds an
    unusable frame at ``position``: a writer's write in progress if it
    holds the lock (stop before it), else damage as a writer sees it
    (CorruptJournalError). If the frame or the record became intact
    meanwhile (a writer finished), read again."""
    if writer_busy(log.directory):
        return ReadStep([], position, True)
    size = os.fstat(fd).st_size
    rest = os.pread(fd, size - position.offset, position.offset)
    if intact_frame_at(rest, 0) or read_extent_record(log.directory) is not DAMAGED:
        return ReadStep([], position, False)
    raise damaged(log.files, position.segment, position.offset, EXTENT_DAMAGED_TOO)


def _legacy_frames(log: SegmentLog, fd: int, position: Position) -> tuple[ReadStep | None, Stop]:
    found = _frames(log, fd, position, None)
    here = Position(position.segment, found.offset)
    if found.sealed:
        after = _segment_after(log, position.segment)
        if after is not None:
            return ReadStep(found.batches, Position(after, SEGMENT_HEADER_SIZE), False), found.stop
        # Sealed, but the next segment is not created yet (or its creator
        # died): stay at the seal, to read it again next time.
        return ReadStep(found.batches, here, not found.batches), found.stop
    if not found.batches:
        return None, found.stop
    # Read to the end of the last segment: the reader is at the end now, no
    # second look needed (a later segment would start right after it).
    at_end = (
        found.reached
        and found.stop is Stop.END
        and not os.path.exists(log.path(found.batches[-1].last_sequence + 1))
    )
    return ReadStep(found.batches, here, at_end), found.stop


class _Frames(NamedTuple):
    batches: list[RecordBatch]
    offset: int  # just past the last batch (where the seal is, if sealed)
    sealed: bool  # the seal follows the batches
    stop: Stop
    reached: bool  # the read reached the end asked for


def _frames(
    log: SegmentLog,
    fd: int,
    position: Position,
    end: int | None,
    limit: int | None = None,
    window: int | None = None,
) -> _Frames:
    """The batches at ``position``, up to ``end`` (None: the end of the
    file), at most ``limit`` of them (None: all the window holds)."""
    parsed, reached = read_window(fd, position.offset, end, window)
    batches: list[RecordBatch] = []
    offset = position.offset
    path = log.path(position.segment)
    for payload in parsed.payloads:
        if limit is not None and len(batches) >= limit:  # the rest: next step
            return _Frames(batches, offset, False, Stop.INCOMPLETE, False)
        batch = decode_batch(payload, path=path, offset=offset)
        if batch is None:
            return _Frames(batches, offset, True, parsed.stop, reached)
        if offset == SEGMENT_HEADER_SIZE and batch.first_sequence != position.segment:
            raise damaged(
                log.files,
                position.segment,
                position.offset,
                f"its first batch holds sequence {batch.first_sequence}, not {position.segment}",
            )
        offset += FRAME_HEADER + len(payload)
        batches.append(batch)
    return _Frames(batches, offset, False, parsed.stop, reached)


def _segment_after(log: SegmentLog, segment: int) -> int | None:
    later = [s for s in log.segments() if s > segment]
    return later[0] if later else None
