"""Reading a segment log without its lock: one step at a time."""

from __future__ import annotations

import os
from typing import NamedTuple

from calliope.adapters.files.batch_format import decode_batch
from calliope.adapters.files.framing import FRAME_HEADER, SEGMENT_HEADER_SIZE, Stop
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


def read_step(log: SegmentLog, position: Position) -> ReadStep:
    """Read the batches at ``position`` (blocking; no lock taken).

    Moves to the next segment after a seal. At the end of the last segment,
    stops before an incomplete or bad frame (raising if intact data follows
    it: damage). A segment with a later one after it is finished, so it must
    end in its seal: anything else there is damage.
    """
    try:
        fd = os.open(log.path(position.segment), os.O_RDONLY)
    except FileNotFoundError:
        return ReadStep([], position, True)
    try:
        step, stop = _step(log, fd, position)
        if step is not None:
            return step
        # Nothing more here. If a later segment exists, this one was sealed
        # before it was created: read again, and the seal must be here now.
        if not [s for s in log.segments() if s > position.segment]:
            if stop is not Stop.END:
                check_damage(fd, log.path(position.segment), position.offset)
            return ReadStep([], position, True)
        step, _ = _step(log, fd, position)
        if step is not None:
            return step
        path = log.path(position.segment)
        raise CorruptJournalError(
            f"journal file {path} ends at byte offset {position.offset} without the seal "
            f"that must close it, although a later segment exists: data after that offset is "
            f"damaged or lost. Restore the file from a backup or a replica",
            path=path,
            offset=position.offset,
        )
    finally:
        os.close(fd)


def _step(log: SegmentLog, fd: int, position: Position) -> tuple[ReadStep | None, Stop]:
    """The batches at ``position`` and where to go next (None if there is
    nothing usable there yet), and why parsing stopped."""
    parsed, at_eof = read_window(fd, position.offset)
    batches: list[RecordBatch] = []
    offset = position.offset
    for payload in parsed.payloads:
        batch = decode_batch(payload)
        if batch is None:  # the seal: the log goes on in the next segment
            later = [s for s in log.segments() if s > position.segment]
            if later:
                return ReadStep(
                    batches, Position(later[0], SEGMENT_HEADER_SIZE), False
                ), parsed.stop
            # Sealed, but the next segment is not created yet (or its creator
            # died): stay at the seal, to read it again next time.
            return ReadStep(batches, Position(position.segment, offset), not batches), parsed.stop
        offset += FRAME_HEADER + len(payload)
        batches.append(batch)
    if batches:
        # Read to the end of the last segment: the reader is at the end now,
        # no second look needed (a later segment means it must read on).
        # A later segment would start right after the last batch read.
        at_end = (
            at_eof
            and parsed.stop is Stop.END
            and not os.path.exists(log.path(batches[-1].last_sequence + 1))
        )
        return ReadStep(batches, Position(position.segment, offset), at_end), parsed.stop
    return None, parsed.stop
