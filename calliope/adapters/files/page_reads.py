"""Reading a log's committed batches without its lock: a range, or a page.

Contract: batches come back in log order, cut to what was asked, and a
sequence that does not follow on from the one before is damage
(CorruptJournalError naming the file and offset), never skipped. The
functions block; the file journal calls them from a worker thread, or on
the event loop when little is to be read.
"""

from __future__ import annotations

from calliope.adapters.files.damage import out_of_sequence
from calliope.adapters.files.reader import ReadStep, read_step
from calliope.adapters.files.segment_files import Position
from calliope.adapters.files.segment_log import SegmentLog
from calliope.core.replication import RecordBatch

__all__ = ["in_range", "read_page"]


def in_range(
    log: SegmentLog,
    step: ReadStep,
    position: Position,
    expected: int | None,
    from_sequence: int,
    to_sequence: int | None,
) -> tuple[list[RecordBatch], int | None]:
    """The step's batches cut to the range, checking that sequences follow
    on from ``expected``; and the sequence expected next."""
    wanted: list[RecordBatch] = []
    for batch in step.batches:
        if expected is not None and batch.first_sequence != expected:
            raise out_of_sequence(
                log.files, position.segment, position.offset, expected, batch.first_sequence
            )
        expected = batch.last_sequence + 1
        part = batch.sliced(from_sequence, to_sequence)
        if part is not None:
            wanted.append(part)
    return wanted, expected


def read_page(
    log: SegmentLog, position: Position | None, from_sequence: int, limit: int
) -> tuple[list[RecordBatch], bool, Position | None, int]:
    """Blocking: the committed batches from ``from_sequence`` on, cut to it,
    about ``limit`` events at most (at least one batch); whether the log
    holds more; and where the last step read started, with the first
    sequence there (a hint for the next page)."""
    if position is None:
        position = log.locate(from_sequence)
        if position is None:
            return [], False, None, from_sequence
    found: list[RecordBatch] = []
    count = 0
    expected: int | None = None
    while True:
        start, start_sequence = position, expected if expected is not None else from_sequence
        step = read_step(log, position, limit=limit - count)
        wanted, expected = in_range(log, step, position, expected, from_sequence, None)
        for batch in wanted:
            if count >= limit:
                return found, True, start, start_sequence
            found.append(batch)
            count += len(batch.items)
        position = step.position
        if step.at_end:
            return found, False, position, expected if expected is not None else from_sequence
        if count >= limit:
            return found, True, position, expected if expected is not None else from_sequence
