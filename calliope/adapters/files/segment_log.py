"""One append-only log on disk: segment files, a sparse index, a writer lock.

A log is a directory of segments named by the first sequence they hold
(``00000000000000000001.seg``), each with a sparse index beside it
(``.idx``: pairs of little-endian u64 first sequence, byte offset of a
frame, one every ``index_every`` bytes; a hint that is checked against the
frame it names and ignored when wrong). Each frame holds one atomic batch:
the msgpack array ``[first_sequence, writer, version, timestamp_us, items]``
with ``items`` an array of ``[type_name, schema_version, data]``. A frame
whose payload is msgpack ``nil`` *seals* its segment: the log continues in
the next segment, and nothing follows the seal.

Any process may append. A writer holds an exclusive ``flock`` on ``lock``
for its whole catch-up, check, write, fsync step, so sequences stay
contiguous and ``expected_sequence`` holds across processes. Catching up
is cheap: the writer keeps its last segment open and reads only what grew
since it last looked (another process rolling to a new segment first seals
this one, so a changed size is the only signal needed).

Recovery happens under that lock: a writer that finds an incomplete or bad
frame at the very end of the last segment, with nothing intact after it,
cuts it (a write that died mid-way, never acknowledged; logged). A bad
frame with intact data after it is damage: CorruptJournalError, naming the
file and offset, for readers and writers alike. Nothing is ever skipped.

Readers take no lock and never cut anything: they stop at an incomplete
tail (someone may be writing it). The methods here block; the file journal
calls them inline when they cannot wait on another process, else from a
worker thread.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import os
import struct
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from calliope.adapters.files.batch_format import SEAL, batch_frame, decode_batch
from calliope.adapters.files.framing import (
    FRAME_HEADER,
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    Parsed,
    Stop,
    find_valid_frame,
    frame_length,
    intact_frame_at,
    parse_frames,
)
from calliope.adapters.files.fsutil import fsync_directory, private_makedirs
from calliope.errors import (
    ConcurrencyError,
    CorruptJournalError,
    EventEncodingError,
    StorageError,
)
from calliope.shell.ports import Durability, NewEvent, RecordBatch

__all__ = ["AppendRequest", "Position", "SegmentLog"]

logger = logging.getLogger("calliope.files")

_INDEX_ENTRY = struct.Struct("<QQ")
_NOTHING = Parsed([], 0, Stop.END)
_WINDOW = 256 * 1024
_MAX_FRAME = 256 * 1024 * 1024


class AppendRequest(NamedTuple):
    """One atomic batch to append: the events and their packed items."""

    writer: str
    events: Sequence[NewEvent]
    items: Sequence[bytes]  # msgpack of [type_name, schema_version, data] per event
    size: int  # total bytes of items
    expected_sequence: int | None
    timestamp_us: int
    # Replica logs: what the writer has seen of other replicas, merged into
    # the version of the first event. None for plain logs.
    observed: Mapping[str, int] | None = None


AppendResult = RecordBatch | None | BaseException


class _PendingFrame:
    """The requests going into one frame: they continue one another."""

    __slots__ = ("first_sequence", "items", "size", "timestamp_us", "version", "writer")

    def __init__(
        self, first_sequence: int, writer: str, version: dict[str, int], timestamp_us: int
    ) -> None:
        self.first_sequence = first_sequence
        self.writer = writer
        self.version = dict(version)
        self.timestamp_us = timestamp_us  # the first request's: all its events share it
        self.items: list[bytes] = []
        self.size = 0

    def add(self, items: Sequence[bytes], size: int) -> None:
        self.items.extend(items)
        self.size += size

    def frame(self) -> bytes:
        return batch_frame(
            self.first_sequence, self.writer, self.version, self.timestamp_us, self.items
        )


class Position(NamedTuple):
    """Where a reader is: a segment (by first sequence) and a byte offset."""

    segment: int
    offset: int


class _Tail:
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


class SegmentLog:
    """The files of one log. Its methods block (see the module docstring)."""

    def __init__(
        self,
        directory: str,
        *,
        stream_id: str,
        durability: Durability,
        segment_bytes: int,
        index_every: int = 64 * 1024,
    ) -> None:
        self.directory = directory
        self.stream_id = stream_id
        self._durability = durability
        self._segment_bytes = segment_bytes
        self._index_every = index_every
        self._lock_fd: int | None = None
        self._tail: _Tail | None = None

    # -- layout ---------------------------------------------------------------

    def path(self, segment: int) -> str:
        return os.path.join(self.directory, f"{segment:020d}.seg")

    def _index_path(self, segment: int) -> str:
        return os.path.join(self.directory, f"{segment:020d}.idx")

    def segments(self) -> list[int]:
        """First sequences of the segments, ascending ([] if the log is empty)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(
            int(name[:-4]) for name in names if name.endswith(".seg") and name[:-4].isdigit()
        )

    def read_index(self, segment: int) -> list[tuple[int, int]]:
        """The sparse index of a segment: (first sequence, offset), ascending."""
        try:
            with open(self._index_path(segment), "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return []
        usable = len(raw) - len(raw) % _INDEX_ENTRY.size
        return sorted(
            (sequence, offset)
            for sequence, offset in _INDEX_ENTRY.iter_unpack(raw[:usable])
            if offset >= SEGMENT_HEADER_SIZE
        )

    @staticmethod
    def batch_at(fd: int, offset: int) -> RecordBatch | None:
        """The batch whose frame starts at ``offset``, or None if no intact
        batch frame starts there (so an index entry naming it is ignored)."""
        header = os.pread(fd, FRAME_HEADER, offset)
        length = frame_length(header)
        if length is None:
            return None
        parsed = parse_frames(header + os.pread(fd, length, offset + FRAME_HEADER))
        if len(parsed.payloads) != 1:
            return None
        return decode_batch(parsed.payloads[0])

    def _indexed_start(self, fd: int, segment: int, sequence: int | None) -> tuple[Position, int]:
        """The last index entry at or before ``sequence`` (None: the last one)
        that names a real batch, else the segment start; and the first
        sequence found there."""
        entries = self.read_index(segment)
        if sequence is not None:
            entries = entries[: bisect.bisect_right(entries, (sequence, 1 << 63))]
        for first, offset in reversed(entries):
            batch = self.batch_at(fd, offset)
            if batch is not None and batch.first_sequence == first:
                return Position(segment, offset), first
        return Position(segment, SEGMENT_HEADER_SIZE), segment

    def locate(self, sequence: int) -> Position | None:
        """Where to start reading to find ``sequence`` (None: the log is empty):
        in the segment holding it, at the nearest verified index entry."""
        segments = self.segments()
        if not segments:
            return None
        segment = segments[max(bisect.bisect_right(segments, sequence) - 1, 0)]
        try:
            fd = os.open(self.path(segment), os.O_RDONLY)
        except FileNotFoundError:
            return Position(segment, SEGMENT_HEADER_SIZE)
        try:
            return self._indexed_start(fd, segment, sequence)[0]
        finally:
            os.close(fd)

    # -- reading (no lock) ----------------------------------------------------

    @staticmethod
    def read_window(fd: int, offset: int) -> tuple[Parsed, bool]:
        """Parse the frames from ``offset``; True if the read reached EOF.

        The window grows to hold a frame larger than it; it never asks for
        more than the file holds (a large idle buffer is costly to allocate).
        """
        remaining = os.fstat(fd).st_size - offset
        if remaining <= 0:
            return _NOTHING, True
        window = min(_WINDOW, remaining + 1)  # +1: a short read means EOF
        while True:
            data = os.pread(fd, window, offset)
            parsed = parse_frames(data)
            at_eof = len(data) < window
            if parsed.payloads or at_eof or parsed.stop is not Stop.INCOMPLETE:
                return parsed, at_eof
            needed = frame_length(data[:FRAME_HEADER])
            window = max(window * 2, FRAME_HEADER + (needed or 0))

    def check_damage(self, fd: int, segment: int, offset: int) -> None:
        """Raise CorruptJournalError if intact frames follow the unusable one
        at ``offset``; return if nothing intact follows (a torn or
        in-progress tail)."""
        size = os.fstat(fd).st_size
        rest = os.pread(fd, size - offset, offset)
        if intact_frame_at(rest, 0):
            return  # a writer completed that frame meanwhile: not damage
        found = find_valid_frame(rest, 1)
        if found is not None:
            path = self.path(segment)
            raise CorruptJournalError(
                f"journal file {path} has a damaged frame at byte offset {offset} followed "
                f"by intact data at offset {offset + found}; Calliope will not skip it. "
                f"Restore the file from a backup or a replica, or truncate it at offset "
                f"{offset} if losing what follows is acceptable",
                path=path,
                offset=offset,
            )

    def _gap(self, segment: int, offset: int, expected: int, found: int) -> CorruptJournalError:
        path = self.path(segment)
        return CorruptJournalError(
            f"journal file {path} holds sequence {found} at byte offset {offset} where "
            f"{expected} belongs (stream {self.stream_id!r}); restore it from a backup",
            path=path,
            offset=offset,
        )

    def _peek(self) -> _Tail | None:
        segments = self.segments()
        if not segments:
            return None
        fd = os.open(self.path(segments[-1]), os.O_RDONLY)
        try:
            start, first = self._indexed_start(fd, segments[-1], None)
            tail = _Tail(segments[-1], -1, start.offset, first - 1)
            self._catch_up(fd, tail, os.fstat(fd).st_size, cut=False)
        finally:
            os.close(fd)
        if tail.last_sequence and not tail.last_version and len(segments) > 1:
            tail.last_version = self._last_version_of(segments[-2])
        return tail

    def peek_last(self) -> int:
        """The last committed sequence, read without the lock (0 if empty)."""
        tail = self._peek()
        return 0 if tail is None else tail.last_sequence

    def peek_last_version(self) -> dict[str, int]:
        """The version of the last committed event, read without the lock."""
        tail = self._peek()
        return {} if tail is None else tail.last_version

    # -- writing (under the lock) ---------------------------------------------

    def _lock(self) -> int:
        if self._lock_fd is None:
            private_makedirs(self.directory)
            self._lock_fd = os.open(
                os.path.join(self.directory, "lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
        return self._lock_fd

    def close(self) -> None:
        if self._tail is not None:
            os.close(self._tail.fd)
            self._tail = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def try_append(self, requests: Sequence[AppendRequest]) -> list[AppendResult] | None:
        """Append if the lock is free right now; None (nothing done) if another
        process holds it."""
        lock = self._lock()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return self._append_then_unlock(lock, requests)

    def append(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Append each request atomically, waiting for the lock: one write and
        one fsync for all of them."""
        lock = self._lock()
        fcntl.flock(lock, fcntl.LOCK_EX)
        return self._append_then_unlock(lock, requests)

    def _append_then_unlock(
        self, lock: int, requests: Sequence[AppendRequest]
    ) -> list[AppendResult]:
        try:
            return self._append_locked(requests)
        except BaseException:
            self._forget_tail()  # re-learn the tail from the files next time
            raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def _forget_tail(self) -> None:
        if self._tail is not None:
            with contextlib.suppress(OSError):
                os.close(self._tail.fd)
            self._tail = None

    def _append_locked(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Check each request in order; write the accepted ones, consecutive
        requests of one writer sharing a frame (still all-or-nothing each:
        a frame is all-or-nothing), with one write and one fsync."""
        tail = self._refresh_tail()
        if tail.end >= self._segment_bytes:
            tail = self._roll(tail)
        results: list[AppendResult] = []
        frames: list[bytes] = []
        pending: _PendingFrame | None = None
        written = 0
        sequence = tail.last_sequence
        version = tail.last_version
        index_entry: tuple[int, int] | None = None
        for request in requests:
            expected = request.expected_sequence
            if expected is not None and expected != sequence:
                results.append(
                    ConcurrencyError(
                        f"stream {self.stream_id!r} is at sequence {sequence}, not the expected "
                        f"{expected}; nothing was written. Read the new events and retry",
                        stream_id=self.stream_id,
                        expected=expected,
                        actual=sequence,
                    )
                )
                continue
            count = len(request.items)
            if not count:
                results.append(None)
                continue
            size = request.size
            if size > _MAX_FRAME - 4096:
                results.append(
                    EventEncodingError(
                        f"a batch of {count} events encodes to {size:,} bytes, over the limit "
                        f"of {_MAX_FRAME - 4096:,}; persist it in smaller batches"
                    )
                )
                continue
            writer = request.writer
            first = dict(version)
            first[writer] = first.get(writer, 0) + 1
            follows = True  # the first event's version is the previous one's plus one
            if request.observed:
                for replica, counter in request.observed.items():
                    if replica != writer and counter > first.get(replica, 0):
                        first[replica] = counter
                        follows = False
            if (
                pending is None
                or not follows
                or pending.writer != writer
                or pending.size + size > _MAX_FRAME // 2
            ):
                if pending is not None:
                    frames.append(pending.frame())
                    written += len(frames[-1])
                if (
                    index_entry is None
                    and tail.end + written - tail.index_offset >= self._index_every
                ):
                    index_entry = (sequence + 1, tail.end + written)
                pending = _PendingFrame(sequence + 1, writer, first, request.timestamp_us)
            pending.add(request.items, size)
            results.append(
                # NewEvent is (type_name, schema_version, data): the item shape.
                RecordBatch(sequence + 1, writer, first, pending.timestamp_us, request.events)
            )
            sequence += count
            version = dict(first)
            version[writer] += count - 1
        if pending is not None:
            frames.append(pending.frame())
            self._write(tail, b"".join(frames) if len(frames) > 1 else frames[0])
            tail.last_sequence = sequence
            tail.last_version = version
            if index_entry is not None:
                self._write_index(tail, index_entry)
        return results

    def _write(self, tail: _Tail, data: bytes) -> None:
        try:
            written = 0
            while written < len(data):
                written += os.pwrite(tail.fd, data[written:], tail.end + written)
            if self._durability == "fsync":
                os.fdatasync(tail.fd)
        except OSError as error:
            # Leave no partial frame behind: cut back to the last intact one.
            with contextlib.suppress(OSError):
                os.ftruncate(tail.fd, tail.end)
            raise StorageError(
                f"writing to {self.path(tail.segment)} failed: {error}; the batch was not "
                f"written. Free disk space or fix permissions and retry"
            ) from error
        tail.end += len(data)

    def _write_index(self, tail: _Tail, entry: tuple[int, int]) -> None:
        """Add a sparse index entry. The index is only a hint and the batch is
        already durable: failing to extend it is logged, never raised."""
        path = self._index_path(tail.segment)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, _INDEX_ENTRY.pack(*entry))
            finally:
                os.close(fd)
        except OSError as error:
            logger.warning(
                "could not extend the index %s (%s); reads will scan further", path, error
            )
            return
        tail.index_offset = entry[1]

    def _create_segment(self, first: int) -> int:
        """Create (or reset a headerless) segment; return it open for writing."""
        private_makedirs(self.directory)
        fd = os.open(self.path(first), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < SEGMENT_HEADER_SIZE:
                os.ftruncate(fd, 0)
                os.pwrite(fd, SEGMENT_HEADER, 0)
                os.fsync(fd)
                fsync_directory(self.directory)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _roll(self, tail: _Tail) -> _Tail:
        """Seal the full segment and continue in a new one."""
        if not tail.sealed:
            os.pwrite(tail.fd, SEAL, tail.end)
            os.fdatasync(tail.fd)
        return self._next_segment(tail)

    def _next_segment(self, tail: _Tail) -> _Tail:
        first = tail.last_sequence + 1
        fd = self._create_segment(first)
        os.close(tail.fd)
        rolled = _Tail(first, fd, SEGMENT_HEADER_SIZE, tail.last_sequence)
        rolled.last_version = tail.last_version
        self._tail = rolled
        return rolled

    def _refresh_tail(self) -> _Tail:
        """Catch up with the files: appends and rolls by others, a torn tail."""
        tail = self._tail
        if tail is None:
            tail = self._tail = self._load_tail()
        size = os.fstat(tail.fd).st_size
        if size != tail.end:
            self._catch_up(tail.fd, tail, size, cut=True)
        if tail.sealed:
            # Someone rolled (or died between sealing and creating the next).
            later = [s for s in self.segments() if s > tail.segment]
            if later:
                os.close(tail.fd)
                self._tail = None
                return self._refresh_tail()
            tail = self._next_segment(tail)
        return tail

    def _load_tail(self) -> _Tail:
        """The tail of the last segment, found from its index and the files."""
        segments = self.segments()
        if not segments:
            return _Tail(1, self._create_segment(1), SEGMENT_HEADER_SIZE, 0)
        last = segments[-1]
        fd = self._create_segment(last)  # opens it, redoing a header a crash left out
        start, first = self._indexed_start(fd, last, None)
        tail = _Tail(last, fd, start.offset, first - 1)
        if start.offset == SEGMENT_HEADER_SIZE and len(segments) > 1:
            tail.last_version = self._last_version_of(segments[-2])
        return tail

    def _last_version_of(self, segment: int) -> dict[str, int]:
        fd = os.open(self.path(segment), os.O_RDONLY)
        try:
            start, first = self._indexed_start(fd, segment, None)
            tail = _Tail(segment, fd, start.offset, first - 1)
            self._catch_up(fd, tail, os.fstat(fd).st_size, cut=False)
            return tail.last_version
        finally:
            os.close(fd)

    def _catch_up(self, fd: int, tail: _Tail, size: int, *, cut: bool) -> None:
        """Read the batches after ``tail.end``: raise on damage or a gap; cut an
        unusable end if ``cut`` (only under the lock)."""
        while tail.end < size and not tail.sealed:
            parsed, at_eof = self.read_window(fd, tail.end)
            offset = tail.end
            for payload in parsed.payloads:
                batch = decode_batch(payload)
                if batch is None:
                    tail.sealed = True
                    break
                if batch.first_sequence != tail.last_sequence + 1:
                    raise self._gap(
                        tail.segment, offset, tail.last_sequence + 1, batch.first_sequence
                    )
                tail.last_sequence = batch.last_sequence
                version = dict(batch.version)
                version[batch.writer] += len(batch.items) - 1
                tail.last_version = version
                offset += FRAME_HEADER + len(payload)
            tail.end = offset
            if tail.sealed or parsed.stop is Stop.END:
                continue
            if parsed.stop is Stop.INCOMPLETE and not at_eof:
                continue  # the window ended inside a frame: read on
            self.check_damage(fd, tail.segment, tail.end)
            if cut:
                self._cut(fd, tail, size)
            return

    def _cut(self, fd: int, tail: _Tail, size: int) -> None:
        logger.warning(
            "cutting an incomplete tail of %d bytes from %s at offset %d "
            "(a write that never completed, so was never acknowledged)",
            size - tail.end,
            self.path(tail.segment),
            tail.end,
        )
        os.ftruncate(fd, tail.end)
        os.fsync(fd)
        entries = self.read_index(tail.segment)
        kept = [entry for entry in entries if entry[1] < tail.end]
        if len(kept) != len(entries):
            with open(self._index_path(tail.segment), "wb") as handle:
                handle.write(b"".join(_INDEX_ENTRY.pack(*entry) for entry in kept))
