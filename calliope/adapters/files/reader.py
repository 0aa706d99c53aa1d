"""Reading a segment log without its lock: one step at a time."""

from __future__ import annotations

import os
from typing import NamedTuple

from calliope.adapters.files.batch_format import decode_batch
from calliope.adapters.files.framing import FRAME_HEADER, SEGMENT_HEADER_SIZE, Stop
from calliope.adapters.files.segment_log import Position, SegmentLog
from calliope.shell.ports import RecordBatch

__all__ = ["ReadStep", "read_step"]


class ReadStep(NamedTuple):
    """One step of a reader: batches found, where to continue, and whether
    the reader has reached the end of what is committed now."""

    batches: list[RecordBatch]
    position: Position
    at_end: bool


def read_step(log: SegmentLog, position: Position) -> ReadStep:
    """Read the batches at ``position`` (blocking; no lock taken).

    Moves to the next segment after a seal. Stops at an incomplete or bad
    frame at the end (raising if intact data follows it: damage).
    """
    try:
        fd = os.open(log.path(position.segment), os.O_RDONLY)
    except FileNotFoundError:
        return ReadStep([], position, True)
    try:
        parsed, _ = log.read_window(fd, position.offset)
        batches: list[RecordBatch] = []
        offset = position.offset
        for payload in parsed.payloads:
            batch = decode_batch(payload)
            offset += FRAME_HEADER + len(payload)
            if batch is None:
                later = [s for s in log.segments() if s > position.segment]
                if not later:  # the roller died before creating the next segment
                    return ReadStep(batches, Position(position.segment, offset), True)
                return ReadStep(batches, Position(later[0], SEGMENT_HEADER_SIZE), False)
            batches.append(batch)
        if batches:
            return ReadStep(batches, Position(position.segment, offset), False)
        if parsed.stop is not Stop.END:
            log.check_damage(fd, position.segment, offset)
        return ReadStep([], Position(position.segment, offset), True)
    finally:
        os.close(fd)
