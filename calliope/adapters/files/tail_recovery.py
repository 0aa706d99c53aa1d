"""Finding the end of a segment log from its files: catch-up and recovery.

A writer keeps its last segment open (a ``Tail``) and, under the lock,
reads only what grew since it last looked (another process rolling to a new
segment first seals this one, so a changed size is the only signal
needed). It starts from the last verified index entry of the last segment.

Contract: batches must follow one another (a gap is CorruptJournalError).
Under the lock (``refresh_tail``), an incomplete or bad frame at the very
end of the last segment, with nothing intact after it, is cut: a write that
died mid-way, never acknowledged; the cut is logged. A bad frame with
intact data after it is damage: CorruptJournalError, never skipped.
Without the lock (``peek_tail``), nothing is cut: an incomplete end may be
a write in progress.
"""

from __future__ import annotations

import contextlib
import logging
import os

from calliope.adapters.files.batch_format import decode_batch
from calliope.adapters.files.framing import FRAME_HEADER, SEGMENT_HEADER_SIZE, Stop
from calliope.adapters.files.segment_files import SegmentFiles, create_segment
from calliope.adapters.files.segment_frames import check_damage, read_window
from calliope.adapters.files.segment_index import indexed_start, trim_index
from calliope.errors import CorruptJournalError

__all__ = ["Tail", "next_segment", "peek_tail", "refresh_tail"]

logger = logging.getLogger("calliope.files")


class Tail:
    """What the writer knows of the log's end (valid only under the lock)."""

    __slots__ = ("end", "fd", "index_offset", "last_sequence", "last_version", "sealed", "segment")

    def __init__(self, segment: int, fd: int, end: int, last_sequence: int) -> None:
        self.segment = segment
        self.fd = fd
        self.end = end
        self.last_sequence = last_sequence
        self.last_version: dict[str, int] = {}
        self.index_offset = end
        self.sealed = False


def refresh_tail(files: SegmentFiles, tail: Tail | None) -> Tail:
    """Catch ``tail`` (None: not loaded yet) up with the files: appends and
    rolls by others, a torn end (cut). Call under the lock. Returns the tail
    to write at, perhaps a new one; on error, the tail's file is closed (load
    it afresh next time)."""
    while True:
        if tail is None:
            tail = _load_tail(files)
        try:
            size = os.fstat(tail.fd).st_size
            if size != tail.end:
                _catch_up(files, tail.fd, tail, size, cut=True)
            if not tail.sealed:
                return tail
            # Someone rolled (or died between sealing and creating the next).
            if not [s for s in files.segments() if s > tail.segment]:
                return next_segment(files, tail)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(tail.fd)
            raise
        os.close(tail.fd)
        tail = None


def next_segment(files: SegmentFiles, tail: Tail) -> Tail:
    """Continue a sealed tail in a new segment; closes the old one."""
    first = tail.last_sequence + 1
    fd = create_segment(files, first)
    os.close(tail.fd)
    rolled = Tail(first, fd, SEGMENT_HEADER_SIZE, tail.last_sequence)
    rolled.last_version = tail.last_version
    return rolled


def peek_tail(files: SegmentFiles) -> Tail | None:
    """The end of the log as its files show it now, read without the lock
    (None if the log is empty). The result's file is closed."""
    segments = files.segments()
    if not segments:
        return None
    tail = _scan(files, segments[-1])
    if tail.last_sequence and not tail.last_version and len(segments) > 1:
        tail.last_version = _scan(files, segments[-2]).last_version
    return tail


def _load_tail(files: SegmentFiles) -> Tail:
    """The tail of the last segment, found from its index and the files."""
    segments = files.segments()
    if not segments:
        return Tail(1, create_segment(files, 1), SEGMENT_HEADER_SIZE, 0)
    last = segments[-1]
    fd = create_segment(files, last)  # opens it, redoing a header a crash left out
    start, first = indexed_start(files, fd, last, None)
    tail = Tail(last, fd, start.offset, first - 1)
    if start.offset == SEGMENT_HEADER_SIZE and len(segments) > 1:
        tail.last_version = _scan(files, segments[-2]).last_version
    return tail


def _scan(files: SegmentFiles, segment: int) -> Tail:
    """The end of one segment, read without the lock (its file closed)."""
    fd = os.open(files.path(segment), os.O_RDONLY)
    try:
        start, first = indexed_start(files, fd, segment, None)
        tail = Tail(segment, -1, start.offset, first - 1)
        _catch_up(files, fd, tail, os.fstat(fd).st_size, cut=False)
    finally:
        os.close(fd)
    return tail


def _catch_up(files: SegmentFiles, fd: int, tail: Tail, size: int, *, cut: bool) -> None:
    """Read the batches after ``tail.end``: raise on damage or a gap; cut an
    unusable end if ``cut`` (only under the lock)."""
    while tail.end < size and not tail.sealed:
        parsed, at_eof = read_window(fd, tail.end)
        offset = tail.end
        for payload in parsed.payloads:
            batch = decode_batch(payload)
            if batch is None:
                tail.sealed = True
                break
            if batch.first_sequence != tail.last_sequence + 1:
                raise _gap(
                    files, tail.segment, offset, tail.last_sequence + 1, batch.first_sequence
                )
            tail.last_sequence = batch.last_sequence
            tail.last_version = batch.last_version
            offset += FRAME_HEADER + len(payload)
        tail.end = offset
        if tail.sealed or parsed.stop is Stop.END:
            continue
        if parsed.stop is Stop.INCOMPLETE and not at_eof:
            continue  # the window ended inside a frame: read on
        check_damage(fd, files.path(tail.segment), tail.end)
        if cut:
            _cut(files, fd, tail, size)
        return


def _cut(files: SegmentFiles, fd: int, tail: Tail, size: int) -> None:
    logger.warning(
        "cutting an incomplete tail of %d bytes from %s at offset %d "
        "(a write that never completed, so was never acknowledged)",
        size - tail.end,
        files.path(tail.segment),
        tail.end,
    )
    os.ftruncate(fd, tail.end)
    os.fsync(fd)
    trim_index(files, tail.segment, tail.end)


def _gap(
    files: SegmentFiles, segment: int, offset: int, expected: int, found: int
) -> CorruptJournalError:
    path = files.path(segment)
    return CorruptJournalError(
        f"journal file {path} holds sequence {found} at byte offset {offset} where "
        f"{expected} belongs (stream {files.stream_id!r}); restore it from a backup",
        path=path,
        offset=offset,
    )
