"""Finding the end of a segment log from its files: catch-up and recovery.

A writer keeps its last segment open (a ``Tail``) and, under the lock,
reads only what grew since it last looked (another process rolling to a new
segment first seals this one, so a changed size is the only signal
needed). It starts from the last verified index entry of the last segment.

Contract (under the lock, ``refresh_tail``):

- Batches must follow one another (a gap is CorruptJournalError).
- An unusable frame (bad or incomplete) with nothing durable saying it was
  acknowledged is a write that died mid-way: the bytes from it to the end of
  the segment are *moved aside* into a ``.aside`` file beside the segment
  (never deleted) and the move is logged at error level with file, offset
  and size. It is never told apart from damage by what follows it: a torn
  write of a large frame may well hold bytes that look like a frame.
- Durable evidence that the bytes were acknowledged makes it a
  CorruptJournalError until the user repairs the log explicitly
  (``app.journal.repair``): the log's committed extent (extent.py) covering
  them, or an index entry naming a frame inside them. Files holding less
  than the extent says (a truncated or deleted segment) are also
  CorruptJournalError: nothing acknowledged vanishes, no sequence is given
  out twice.
- Intact frames past the extent (a writer died between its write and
  recording the extent) are fsynced, then the extent is recorded again.

Without the lock (``peek_tail``), nothing is cut or moved: an incomplete end
may be a write in progress.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os

from calliope.adapters.files.batch_format import decode_batch
from calliope.adapters.files.damage import (
    EXTENT_DAMAGED_TOO,
    damaged,
    out_of_sequence,
    segments_missing,
)
from calliope.adapters.files.disk import sync
from calliope.adapters.files.extent import (
    DAMAGED,
    Extent,
    read_extent,
    read_extent_fd,
    read_extent_record,
    write_extent,
    writer_busy,
)
from calliope.adapters.files.framing import FRAME_HEADER, SEGMENT_HEADER_SIZE, Stop
from calliope.adapters.files.fsutil import fsync_directory
from calliope.adapters.files.segment_files import SegmentFiles, create_segment
from calliope.adapters.files.segment_frames import check_damage, pread_all, read_window
from calliope.adapters.files.segment_index import indexed_start, read_index, trim_index
from calliope.errors import CorruptJournalError

__all__ = [
    "Tail",
    "catch_up",
    "move_aside",
    "next_segment",
    "peek_last",
    "peek_last_version",
    "refresh_tail",
]

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

    def extent(self, synced: bool) -> Extent:
        return Extent(self.segment, self.end, self.last_sequence, synced)


def refresh_tail(files: SegmentFiles, tail: Tail | None, lock_fd: int) -> Tail:
    """Catch ``tail`` (None: not loaded yet) up with the files: appends and
    rolls by others, a torn end (moved aside). Call under the lock, whose
    file is ``lock_fd``. Returns the tail to write at, perhaps a new one; on
    error, the tail's file is closed (load it afresh next time).

    O(1) when nothing changed since this writer's last append; else
    O(what others appended).
    """
    while True:
        known = tail is not None  # a tail kept from our last append is settled
        if tail is None:
            tail = _load_tail(files)
        try:
            size = os.fstat(tail.fd).st_size
            if known and size == tail.end and not tail.sealed:
                return tail
            extent = read_extent_fd(lock_fd)
            if size != tail.end and not catch_up(files, tail.fd, tail, size):
                _recover(files, tail, size, extent)
            if not tail.sealed:
                _settle(files, tail, lock_fd, extent)
                return tail
            # Someone rolled (or died between sealing and creating the next).
            if not [s for s in files.segments() if s > tail.segment]:
                if extent is not None and extent.synced and extent.segment > tail.segment:
                    raise _lost(files, tail, extent)
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


def peek_last(files: SegmentFiles) -> int:
    """The last committed sequence, read without the lock (0: empty log).
    O(1) from the committed extent; a log without one (or whose record is
    damaged: then an unusable end is CorruptJournalError, as for readers)
    is scanned from its last index entry."""
    extent = read_extent_record(files.directory)
    if extent is not None and extent is not DAMAGED:
        return extent.last_sequence
    segments = files.segments()
    if not segments:
        return 0
    return _scan(files, segments[-1], None, extent is DAMAGED).last_sequence


def peek_last_version(files: SegmentFiles) -> dict[str, int]:
    """The version of the last committed event, read without the lock ({}:
    empty log). O(bytes after the last index entry of the last segment)."""
    extent = read_extent_record(files.directory)
    segments = files.segments()
    if extent is not None and extent is not DAMAGED:
        if extent.last_sequence == 0:
            return {}
        last, limit = extent.segment, extent.end
    elif segments:
        last, limit = segments[-1], None
    else:
        return {}
    tail = _scan(files, last, limit, extent is DAMAGED)
    if tail.last_sequence and not tail.last_version:  # nothing in it yet: the previous one
        earlier = [s for s in segments if s < last]
        if earlier:
            tail.last_version = _scan(files, earlier[-1], None).last_version
    return tail.last_version


def _load_tail(files: SegmentFiles) -> Tail:
    """The tail of the last segment, found from its index and the files.

    Also checks what a writer can cheaply: the first segment is there (or,
    with none at all, that the extent names no events), and the one before
    the last ends in its seal just before the last begins
    (damage further back is found by readers). O(bytes after the last
    index entry of the two last segments)."""
    segments = files.segments()
    if not segments:
        extent = read_extent(files.directory)
        if extent is not None and extent.synced and extent.last_sequence > 0:
            raise segments_missing(files, extent)  # (and creates nothing in their place)
        return Tail(1, create_segment(files, 1), SEGMENT_HEADER_SIZE, 0)
    if segments[0] != 1:
        raise damaged(files, 1, 0, "the log's first segment is missing")
    last = segments[-1]
    previous = _scan(files, segments[-2], None) if len(segments) > 1 else None
    if previous is not None and (not previous.sealed or previous.last_sequence + 1 != last):
        raise damaged(
            files,
            previous.segment,
            previous.end,
            f"the segment ends there with sequence {previous.last_sequence}"
            f"{'' if previous.sealed else ' and without its seal'}, but the next one "
            f"starts at {last}",
        )
    fd = create_segment(files, last)  # opens it, redoing a header a crash left out
    start, first = indexed_start(files, fd, last, None)
    tail = Tail(last, fd, start.offset, first - 1)
    if start.offset == SEGMENT_HEADER_SIZE and previous is not None:
        tail.last_version = previous.last_version
    return tail


def _scan(
    files: SegmentFiles, segment: int, limit: int | None, extent_damaged: bool = False
) -> Tail:
    """The end of one segment, read without the lock (its file closed):
    up to ``limit`` (its committed end), or to the first unusable frame
    (damage if ``extent_damaged``, the log's last segment having no intact
    extent record, and no writer is at work: see reader.py)."""
    path = files.path(segment)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if limit is None:
            raise
        raise damaged(files, segment, SEGMENT_HEADER_SIZE, "the file is missing") from None
    try:
        start, first = indexed_start(files, fd, segment, None)
        tail = Tail(segment, -1, start.offset, first - 1)
        size = os.fstat(fd).st_size
        end = size if limit is None else limit
        if size < end:
            raise damaged(files, segment, size, f"the file ends there, before offset {end}")
        if not catch_up(files, fd, tail, end):
            if limit is not None:
                raise damaged(files, segment, tail.end, "the frame there is unusable")
            if (
                extent_damaged
                and not writer_busy(files.directory)
                and read_extent_record(files.directory) is DAMAGED  # (not rewritten meanwhile)
            ):
                raise damaged(files, segment, tail.end, EXTENT_DAMAGED_TOO)
            check_damage(fd, path, tail.end)  # a log without an extent: as before
    finally:
        os.close(fd)
    return tail


def catch_up(files: SegmentFiles, fd: int, tail: Tail, end: int) -> bool:
    """Read the batches between ``tail.end`` and ``end`` (raising on a gap).
    True if they end cleanly there or at a seal; False if an unusable frame
    starts at ``tail.end``. O(bytes read)."""
    path = files.path(tail.segment)
    while tail.end < end and not tail.sealed:
        parsed, reached = read_window(fd, tail.end, end)
        offset = tail.end
        for payload in parsed.payloads:
            batch = decode_batch(payload, path=path, offset=offset)
            if batch is None:
                tail.sealed = True
                break
            if batch.first_sequence != tail.last_sequence + 1:
                raise out_of_sequence(
                    files, tail.segment, offset, tail.last_sequence + 1, batch.first_sequence
                )
            tail.last_sequence = batch.last_sequence
            tail.last_version = batch.last_version
            offset += FRAME_HEADER + len(payload)
        tail.end = offset
        if tail.sealed or parsed.stop is Stop.END:
            continue
        if parsed.stop is Stop.INCOMPLETE and not reached:
            continue  # the window ended inside a frame: read on
        return False
    return True


def _recover(files: SegmentFiles, tail: Tail, size: int, extent: Extent | None) -> None:
    """An unusable frame starts at ``tail.end``: an error if anything durable
    says it was acknowledged, else a write that died mid-way, moved aside."""
    evidence = _evidence(files, tail, size, extent)
    if evidence is not None:
        raise damaged(files, tail.segment, tail.end, evidence)
    move_aside(
        files,
        tail.fd,
        tail.segment,
        tail.end,
        "an incomplete or damaged last write; nothing there was acknowledged",
    )


def _evidence(files: SegmentFiles, tail: Tail, size: int, extent: Extent | None) -> str | None:
    """What says the bytes from ``tail.end`` on were acknowledged, if anything."""
    if extent is DAMAGED:
        return EXTENT_DAMAGED_TOO
    if extent is not None and extent.synced and _behind(tail, extent):
        return (
            f"the log's committed extent says it was written and fsynced up to sequence "
            f"{extent.last_sequence}"
        )
    named = [o for _, o in read_index(files, tail.segment) if tail.end <= o < size]
    if named:
        return f"its index names a batch at offset {named[0]}, past the damage"
    return None


def _settle(files: SegmentFiles, tail: Tail, lock_fd: int, extent: Extent | None) -> None:
    """Check that the files hold everything the extent says was committed;
    make durable and record what they hold past it (a writer died before
    recording it, or the log predates extents)."""
    if extent is not None:
        if _behind(tail, extent):
            if extent.synced:
                raise _lost(files, tail, extent)
            logger.error(
                "the log of stream %r in %s holds events up to %d, but %d were written with "
                "durability='flush' (not fsynced): a power loss took the rest",
                files.stream_id,
                files.directory,
                tail.last_sequence,
                extent.last_sequence,
            )
        elif extent == tail.extent(files.synced):
            return
    sync(files.disk.fdatasync, tail.fd)
    write_extent(files.disk, lock_fd, tail.extent(files.synced))


def move_aside(files: SegmentFiles, fd: int, segment: int, start: int, why: str) -> str:
    """Move the bytes of ``segment`` from ``start`` to its end into a new
    ``.aside`` file beside it (fsynced), then cut the segment there; log it
    at error level. Nothing is deleted. Returns the new file's path.
    O(bytes moved)."""
    path = files.path(segment)
    size = os.fstat(fd).st_size
    aside = _aside_path(path, start)
    out = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        position = start
        while position < size:
            piece = pread_all(fd, min(size - position, 1 << 20), position)
            if not piece:
                break
            written = files.disk.write(out, piece)
            if written != len(piece):
                raise OSError(errno.ENOSPC, "short write while moving bytes aside")
            position += len(piece)
        sync(files.disk.fsync, out)
    finally:
        os.close(out)
    fsync_directory(files.directory)
    logger.error(
        "moved %d bytes at byte offset %d of %s (stream %r) aside to %s: %s",
        size - start,
        start,
        path,
        files.stream_id,
        aside,
        why,
    )
    files.disk.ftruncate(fd, start)
    sync(files.disk.fsync, fd)
    trim_index(files, segment, start)
    return aside


def _aside_path(path: str, start: int) -> str:
    base = f"{path[: -len('.seg')]}.{start}"
    candidate, number = f"{base}.aside", 1
    while os.path.exists(candidate):
        number += 1
        candidate = f"{base}.{number}.aside"
    return candidate


def _behind(tail: Tail, extent: Extent) -> bool:
    """Whether the files (up to ``tail``) hold less than ``extent`` says."""
    return extent.segment > tail.segment or (
        extent.segment == tail.segment and extent.end > tail.end
    )


def _lost(files: SegmentFiles, tail: Tail, extent: Extent) -> CorruptJournalError:
    if extent.segment > tail.segment:
        what = f"segment {files.path(extent.segment)} is missing"
    else:
        what = f"the file ends at offset {tail.end}, before its committed end {extent.end}"
    return damaged(
        files,
        extent.segment,
        min(tail.end, extent.end) if extent.segment == tail.segment else SEGMENT_HEADER_SIZE,
        f"{what}, although events up to sequence {extent.last_sequence} were committed "
        f"(the files hold {tail.last_sequence})",
    )
