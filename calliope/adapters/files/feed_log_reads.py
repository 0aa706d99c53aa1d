"""The feed reader's quick path: reading on in a log from where it stopped.

A feed visits many logs in turn, a few batches each. Going through the
general reader every time (open the lock file for the extent, open the
segment, read a window, close both) costs more than decoding the batches.
So the feed keeps, per log it read lately (``_LOGS`` of them, least
recently used dropped first), the committed extent it last saw and the
bytes it read ahead past what it needed (at least ``_READ_AHEAD`` per file
read, at most ``_KEEP`` kept): reading on exactly where it stopped, inside
that segment and up to a sequence the extent covers, usually needs no
system call at all. Committed bytes never change, so what is kept stays
true. Memory: at most ``_LOGS * _KEEP`` bytes. Any other case (a new
segment, a seal, bytes not committed, anything that does not parse) returns
None, and the general reader does it, damage reporting and all.
"""

from __future__ import annotations

import os
from collections import OrderedDict

from calliope.adapters.files.batch_format import decode_batch
from calliope.adapters.files.extent import read_extent
from calliope.adapters.files.framing import FRAME_HEADER, Stop, parse_frames
from calliope.adapters.files.segment_files import Position
from calliope.core.replication import RecordBatch

__all__ = ["QuickRead", "ReadAhead"]

_LOGS = 4096
_READ_AHEAD = 4096
_KEEP = 8192


class _Log:
    """What is kept of one log: a segment, the bytes read ahead in it from
    ``offset``, and how far it was committed when last looked at."""

    __slots__ = ("buffer", "committed_end", "committed_last", "offset", "segment")

    def __init__(self, segment: int, offset: int) -> None:
        self.segment = segment
        self.offset = offset
        self.buffer = b""
        self.committed_end = 0
        self.committed_last = 0


class QuickRead:
    """What a quick read found: batches from the first sequence asked, the
    position after them, and the sequence after the last."""

    __slots__ = ("batches", "next_sequence", "position")

    def __init__(self, batches: list[RecordBatch], position: Position, next_sequence: int) -> None:
        self.batches = batches
        self.position = position
        self.next_sequence = next_sequence


class ReadAhead:
    """The read-ahead of the logs a feed read lately (bounded; blocking)."""

    def __init__(self) -> None:
        self._logs: OrderedDict[str, _Log] = OrderedDict()

    def _state(self, directory: str, position: Position) -> _Log:
        log = self._logs.get(directory)
        end = None if log is None else log.offset + len(log.buffer)
        if (
            log is None
            or end is None
            or log.segment != position.segment
            or not log.offset <= position.offset <= end
        ):
            fresh = _Log(position.segment, position.offset)
            if log is not None and log.segment == position.segment:
                fresh.committed_end, fresh.committed_last = log.committed_end, log.committed_last
            log = self._logs[directory] = fresh
            if len(self._logs) > _LOGS:
                self._logs.popitem(last=False)
        else:
            self._logs.move_to_end(directory)
        return log

    def read(
        self, directory: str, position: Position, first: int, last: int, window: int
    ) -> QuickRead | None:
        """The committed batches from ``first`` (which starts at
        ``position``) through ``last``, or None if the quick path does not
        apply (see the module docstring)."""
        log = self._state(directory, position)
        if log.committed_last < last:
            extent = read_extent(directory)
            if extent is None or extent.segment != position.segment:
                return None
            log.committed_end, log.committed_last = extent.end, extent.last_sequence
            if extent.last_sequence < last:
                return None
        path = os.path.join(directory, f"{position.segment:020d}.seg")
        at = position.offset - log.offset  # where ``first`` starts in the buffer
        batches: list[RecordBatch] = []
        expected = first
        while expected <= last:
            view = memoryview(log.buffer)[at : at + window]
            parsed = parse_frames(view)
            if not parsed.payloads:
                if parsed.stop is Stop.BAD:
                    return None  # (the general reader says where, and what it is)
                if at + window < len(log.buffer):
                    window *= 2  # a frame larger than the window
                elif not self._fill(log, path, at, window):
                    return None
                else:
                    at = 0
                continue
            for payload in parsed.payloads:
                batch = decode_batch(payload, path=path, offset=log.offset + at)
                if batch is None or batch.first_sequence != expected:
                    return None  # a seal, or something the general reader must judge
                batches.append(batch)
                at += FRAME_HEADER + len(payload)
                expected = batch.last_sequence + 1
                if expected > last:
                    break
        log.offset += at
        log.buffer = log.buffer[at:] if len(log.buffer) - at <= _KEEP else b""
        return QuickRead(batches, Position(position.segment, log.offset), expected)

    @staticmethod
    def _fill(log: _Log, path: str, at: int, window: int) -> bool:
        """Keep the buffer from ``at`` and read more after it (up to the
        committed end); False if there is nothing more to read."""
        start = log.offset + len(log.buffer)
        size = min(log.committed_end - start, max(window, _READ_AHEAD))
        if size <= 0:
            return False
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            data = os.pread(fd, size, start)
        finally:
            os.close(fd)
        if not data:
            return False
        log.buffer = log.buffer[at:] + data
        log.offset += at
        return True

    def close(self) -> None:
        self._logs.clear()
