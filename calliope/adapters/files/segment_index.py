"""The sparse index beside each segment: where to start reading.

A segment's ``.idx`` file holds pairs of little-endian u64 (first sequence,
byte offset of the frame starting with it), one every ``index_every``
bytes of the segment, appended by the writer.

Contract: the index is only a hint. An entry is trusted only after checking
it against the frame it names (and ignored when wrong); a torn last entry is
ignored; failing to extend the index is logged, never raised (the batch it
would point to is already durable). Without a usable entry, reading starts
at the segment's first frame.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct

from calliope.adapters.files.damage import segments_missing
from calliope.adapters.files.extent import read_extent
from calliope.adapters.files.framing import SEGMENT_HEADER_SIZE
from calliope.adapters.files.segment_files import Position, SegmentFiles
from calliope.adapters.files.segment_frames import batch_at
from calliope.errors import CorruptJournalError

__all__ = ["add_index_entry", "indexed_start", "locate", "read_index", "trim_index"]

logger = logging.getLogger("calliope.files")

_INDEX_ENTRY = struct.Struct("<QQ")
_FAR = 1 << 62  # no real offset or sequence gets here: an entry naming one is garbage


def read_index(files: SegmentFiles, segment: int) -> list[tuple[int, int]]:
    """The sparse index of a segment: (first sequence, offset), ascending."""
    try:
        with open(files.index_path(segment), "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return []
    usable = len(raw) - len(raw) % _INDEX_ENTRY.size
    return sorted(
        (sequence, offset)
        for sequence, offset in _INDEX_ENTRY.iter_unpack(raw[:usable])
        if SEGMENT_HEADER_SIZE <= offset < _FAR and 1 <= sequence < _FAR  # else garbage
    )


def indexed_start(
    files: SegmentFiles, fd: int, segment: int, sequence: int | None
) -> tuple[Position, int]:
    """The last index entry at or before ``sequence`` (None: the last one)
    that names a real batch, else the segment start; and the first
    sequence found there."""
    entries = read_index(files, segment)
    if sequence is not None:
        entries = entries[: bisect.bisect_right(entries, (sequence, 1 << 63))]
    for first, offset in reversed(entries):
        batch = batch_at(fd, offset)
        if batch is not None and batch.first_sequence == first:
            return Position(segment, offset), first
    return Position(segment, SEGMENT_HEADER_SIZE), segment


def locate(files: SegmentFiles, sequence: int) -> Position | None:
    """Where to start reading to find ``sequence`` (None: the log is empty):
    in the segment holding it, at the nearest verified index entry. A log
    without segments whose committed extent says it holds events lost them
    (CorruptJournalError)."""
    segments = files.segments()
    if not segments:
        extent = read_extent(files.directory)
        if extent is not None and extent.synced and extent.last_sequence > 0:
            raise segments_missing(files, extent)
        return None
    if segments[0] != 1:
        path = files.path(1)
        raise CorruptJournalError(
            f"journal file {path} (stream {files.stream_id!r}) is missing: it held the "
            f"log's first events, and later segments exist, so reading from sequence "
            f"{sequence} cannot start at {segments[0]}. Restore it from a backup or a "
            f"replica, or call app.journal.repair({files.stream_id!r}) to move the rest "
            f"aside, losing every event",
            path=path,
            offset=0,
        )
    segment = segments[max(bisect.bisect_right(segments, sequence) - 1, 0)]
    try:
        fd = os.open(files.path(segment), os.O_RDONLY)
    except FileNotFoundError:
        return Position(segment, SEGMENT_HEADER_SIZE)
    try:
        return indexed_start(files, fd, segment, sequence)[0]
    finally:
        os.close(fd)


def add_index_entry(files: SegmentFiles, segment: int, entry: tuple[int, int]) -> bool:
    """Append an entry to the segment's index; False (logged) if that failed."""
    path = files.index_path(segment)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            files.disk.write(fd, _INDEX_ENTRY.pack(*entry))
        finally:
            os.close(fd)
    except OSError as error:
        logger.warning("could not extend the index %s (%s); reads will scan further", path, error)
        return False
    return True


def trim_index(files: SegmentFiles, segment: int, end: int) -> None:
    """Drop the entries at or after ``end``: the segment was cut there."""
    entries = read_index(files, segment)
    kept = [entry for entry in entries if entry[1] < end]
    if len(kept) != len(entries):
        with open(files.index_path(segment), "wb") as handle:
            handle.write(b"".join(_INDEX_ENTRY.pack(*entry) for entry in kept))
