"""Reading the frames of an open segment file, without the lock.

Contract: these functions only read (``pread`` on a file descriptor the
caller owns) and never cut or skip anything. An incomplete frame at the end
of a file may be a write in progress, so it is not an error; a bad frame
with intact data after it is damage: CorruptJournalError, naming the file
and offset.
"""

from __future__ import annotations

import os

from calliope.adapters.files.batch_format import decode_batch
from calliope.adapters.files.framing import (
    FRAME_HEADER,
    Parsed,
    Stop,
    find_valid_frame,
    frame_length,
    intact_frame_at,
    parse_frames,
)
from calliope.core.replication import RecordBatch
from calliope.errors import CorruptJournalError

__all__ = ["batch_at", "check_damage", "pread_all", "read_window"]

_NOTHING = Parsed([], 0, Stop.END)
_WINDOW = 256 * 1024
_PIECE = 1024 * 1024


def pread_all(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset``. A large read goes 1 MiB per system
    call and the pieces are joined (``bytes.join`` releases the GIL): one
    huge read into fresh memory holds up the event loop's thread, even from
    a worker thread."""
    if size <= _PIECE:
        return os.pread(fd, size, offset)
    pieces = []
    done = 0
    while done < size:
        piece = os.pread(fd, min(_PIECE, size - done), offset + done)
        if not piece:
            break
        pieces.append(piece)
        done += len(piece)
    return b"".join(pieces)


def read_window(
    fd: int, offset: int, end: int | None = None, window: int | None = None
) -> tuple[Parsed, bool]:
    """Parse the frames from ``offset`` up to ``end`` (None: the end of the
    file); True if the read reached ``end`` (or the end of the file).
    ``window``: bytes to read first (default 256 KiB), for a caller that
    knows it needs little.

    The window grows to hold a frame larger than it; it never asks for
    more than there is to read (a large idle buffer is costly to allocate).
    """
    size = os.fstat(fd).st_size
    stop = size if end is None else min(end, size)
    remaining = stop - offset
    if remaining <= 0:
        return _NOTHING, True
    window = min(window or _WINDOW, remaining)
    while True:
        data = pread_all(fd, window, offset)
        parsed = parse_frames(data)
        reached = len(data) >= remaining or len(data) < window
        if parsed.payloads or reached or parsed.stop is not Stop.INCOMPLETE:
            return parsed, reached
        needed = frame_length(data[:FRAME_HEADER])
        window = min(max(window * 2, FRAME_HEADER + (needed or 0)), remaining)


def check_damage(fd: int, path: str, offset: int) -> None:
    """Raise CorruptJournalError if intact frames follow the unusable one
    at ``offset`` of the segment ``path``; return if nothing intact follows
    (a torn or in-progress tail)."""
    size = os.fstat(fd).st_size
    rest = os.pread(fd, size - offset, offset)
    if intact_frame_at(rest, 0):
        return  # a writer completed that frame meanwhile: not damage
    found = find_valid_frame(rest, 1)
    if found is not None:
        raise CorruptJournalError(
            f"journal file {path} has a damaged frame at byte offset {offset} followed "
            f"by intact data at offset {offset + found}; Calliope will not skip it. "
            f"Restore the file from a backup or a replica, or call app.journal.repair() "
            f"on its stream to move the damaged part aside, losing its events",
            path=path,
            offset=offset,
        )


def batch_at(fd: int, offset: int) -> RecordBatch | None:
    """The batch whose frame starts at ``offset``, or None if no intact
    batch frame starts there (so an index entry naming it is ignored)."""
    header = os.pread(fd, FRAME_HEADER, offset)
    length = frame_length(header)
    if length is None:
        return None
    parsed = parse_frames(pread_all(fd, FRAME_HEADER + length, offset))
    if len(parsed.payloads) != 1:
        return None
    try:
        return decode_batch(parsed.payloads[0])
    except CorruptJournalError:  # an intact frame, but not a batch: a wrong hint
        return None
