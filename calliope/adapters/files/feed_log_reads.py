"""The feed reader's quick path: reading on in a log from where it stopped.

A feed visits many logs in turn, a few batches each. Going through the
general reader every time (open the lock file for the extent, open the
segment, read a window, close both) costs more than decoding the batches.
So the feed keeps a cursor per log it read lately (the caller bounds how
many): where it stopped, the committed extent it last saw there and the
bytes it read ahead past what it needed (at least ``_READ_AHEAD`` per file
read, at most ``_KEEP`` kept past where it stopped): reading on exactly where it
stopped, inside that segment and up to a sequence the extent covers,
usually needs no system call at all. Committed bytes never change, so what
is kept stays true. Any other case (a new
segment, a seal, bytes not committed, anything that does not parse) returns
None, and the general reader does it, damage reporting and all.
"""

from __future__ import annotations

import os

from calliope.adapters.files.batch_format import decode_batch
from calliope.adapters.files.extent import read_extent
from calliope.adapters.files.framing import FRAME_HEADER, Stop, payload_at
from calliope.adapters.files.segment_files import Position
from calliope.core.replication import RecordBatch

__all__ = ["LogCursor"]

_READ_AHEAD = 16 * 1024  # bytes read at least, per file read
_KEEP = _READ_AHEAD  # bytes kept past what a read needed, at most
_START_PER_EVENT = 256.0


class LogCursor:
    """Where a feed stopped in one log, and the bytes it read ahead there.

    ``next_sequence`` starts at ``offset`` of ``segment``; ``buffer`` holds
    the log's bytes from ``base`` (``base <= offset``): what the last file
    read brought (16 KiB, or one larger frame) and what was left before it
    (at most ``_KEEP + 4 KiB``); ``committed_*`` is the extent last seen in
    this segment. Blocking methods.
    """

    __slots__ = (
        "base",
        "buffer",
        "committed_end",
        "committed_last",
        "directory",
        "next_sequence",
        "offset",
        "path",
        "per_event",
        "segment",
    )

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.next_sequence = 0
        self.segment = -1
        self.offset = 0
        self.per_event = _START_PER_EVENT
        self.path = ""
        self.buffer = b""
        self.base = 0
        self.committed_end = 0
        self.committed_last = 0

    def drop_buffer(self) -> None:
        """Forget the read-ahead (the cursor keeps its place)."""
        self.buffer, self.base = b"", self.offset

    @property
    def position(self) -> Position:
        return Position(self.segment, self.offset)

    def moved_to(self, next_sequence: int, position: Position, per_event: float) -> None:
        """The general reader stopped at ``position``, before ``next_sequence``."""
        if position.segment != self.segment:
            self.segment = position.segment
            self.path = os.path.join(self.directory, f"{position.segment:020d}.seg")
            self.committed_end = self.committed_last = 0
            self.buffer, self.base = b"", position.offset
        elif not self.base <= position.offset <= self.base + len(self.buffer):
            self.buffer, self.base = b"", position.offset
        self.next_sequence, self.offset, self.per_event = next_sequence, position.offset, per_event

    def read_on(self, first: int, last: int) -> list[RecordBatch] | None:
        """The committed batches ``first..last`` if ``first`` is where this
        cursor stopped and the quick path applies (module docstring); None
        otherwise (nothing changed)."""
        if first != self.next_sequence or self.segment < 0:
            return None
        if self.committed_last < last:
            extent = read_extent(self.directory)
            if extent is None or extent.segment != self.segment:
                return None
            self.committed_end, self.committed_last = extent.end, extent.last_sequence
            if extent.last_sequence < last:
                return None
        at = self.offset - self.base  # where ``first`` starts in the buffer
        batches: list[RecordBatch] = []
        expected = first
        while expected <= last:
            payload = payload_at(self.buffer, at)
            if payload is Stop.INCOMPLETE:
                if not self._fill(at, int((last - expected + 1) * self.per_event * 1.2) + 64):
                    return None
                at = 0
                continue
            if payload is Stop.BAD:
                return None  # (the general reader says where, and what it is)
            assert isinstance(payload, bytes)
            batch = decode_batch(payload, path=self.path, offset=self.base + at)
            if batch is None or batch.first_sequence != expected:
                return None  # a seal, or something the general reader must judge
            batches.append(batch)
            at += FRAME_HEADER + len(payload)
            expected = batch.last_sequence + 1
        moved = self.base + at - self.offset
        self.per_event = 0.5 * self.per_event + 0.5 * moved / (last - first + 1)
        self.offset, self.next_sequence = self.base + at, expected
        if len(self.buffer) - at > _KEEP + 4096:  # (a large frame's leftovers)
            self.buffer, self.base = b"", self.offset
        return batches

    def _fill(self, at: int, window: int) -> bool:
        """Keep the buffer from ``at`` and read more after it (up to the
        committed end); False if there is nothing more to read."""
        start = self.base + len(self.buffer)
        size = min(self.committed_end - start, max(window, _READ_AHEAD))
        if size <= 0:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            data = os.pread(fd, size, start)
        finally:
            os.close(fd)
        if not data:
            return False
        self.buffer = self.buffer[at:] + data
        self.base += at
        return True
