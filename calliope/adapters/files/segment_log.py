"""One append-only log on disk: segment files, a sparse index, a writer lock.

A log is a directory of segments named by the first sequence they hold
(``00000000000000000001.seg``), each with a sparse index beside it
(``.idx``: pairs of little-endian u64 sequence, byte offset, written every
``index_every`` bytes at the start of a batch; a hint, rebuilt or ignored
when wrong, never trusted over the data). Any process may append, holding
an exclusive ``flock`` on ``lock`` for the whole read-tail, check, write,
fsync step, so sequences stay contiguous and ``expected_sequence`` holds
across processes.

Recovery happens under that lock: the writer first catches up with what
other processes appended, and cuts an incomplete tail left by a writer that
died mid-write (no one else can be writing while the lock is held). A bad
frame followed by valid data is damage and raises CorruptJournalError; the
log is never repaired by skipping data.

Readers take no lock: they yield only frames of complete, committed
batches, so they never see a half-written batch, and stop at an incomplete
tail (someone may be writing it) without touching it.

The blocking methods here run in worker threads (see group_commit.py and
the file journal); nothing here touches the event loop.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import os
import struct
from collections.abc import Sequence
from typing import NamedTuple

import msgpack

from calliope.adapters.files.framing import (
    FRAME_HEADER,
    MAX_PAYLOAD,
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    Parsed,
    Stop,
    encode_frame,
    find_valid_frame,
    parse_frames,
)
from calliope.adapters.files.fsutil import fsync_directory, private_makedirs
from calliope.errors import ConcurrencyError, CorruptJournalError, StorageError
from calliope.shell.ports import Durability, NewEvent, Record

__all__ = ["AppendRequest", "Position", "ReadStep", "SegmentLog", "decode_record", "read_step"]

log = logging.getLogger("calliope.files")

_INDEX_ENTRY = struct.Struct("<QQ")
_SCAN_WINDOW = 4 * 1024 * 1024


def segment_name(first_sequence: int) -> str:
    return f"{first_sequence:020d}.seg"


def decode_record(payload: bytes) -> Record:
    """A frame payload back into a record (the inverse of ``_record_payload``)."""
    return Record(*msgpack.unpackb(payload, raw=False, strict_map_key=False))


class AppendRequest(NamedTuple):
    """One atomic batch to append: pre-packed event data and the conditions."""

    writer: str
    events: Sequence[NewEvent]
    packed: Sequence[bytes]
    expected_sequence: int | None
    timestamp_us: int


class Position(NamedTuple):
    """Where a reader is: a segment (by first sequence) and a byte offset."""

    segment: int
    offset: int


class _Tail:
    """What the writer knows of the log's end (valid only under the lock)."""

    __slots__ = ("end", "index_offset", "last_sequence", "last_version", "segment")

    def __init__(
        self, segment: int, end: int, last_sequence: int, last_version: dict[str, int]
    ) -> None:
        self.segment = segment
        self.end = end
        self.last_sequence = last_sequence
        self.last_version = last_version
        self.index_offset = 0


def _record_payload(
    sequence: int, writer: str, version: dict[str, int], event: NewEvent, packed: bytes, ts: int
) -> bytes:
    # msgpack array of 7: the six header fields, then the pre-packed data.
    head: bytes = msgpack.packb(
        [sequence, writer, version, ts, event.type_name, event.schema_version]
    )
    return b"\x97" + head[1:] + packed


class SegmentLog:
    """The files of one log. Blocking methods: call them from a worker thread."""

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
        return os.path.join(self.directory, segment_name(segment))

    def segments(self) -> list[int]:
        """First sequences of the segments, ascending ([] if the log is empty)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(name[:-4]) for name in names if name.endswith(".seg"))

    def _index_path(self, segment: int) -> str:
        return os.path.join(self.directory, f"{segment:020d}.idx")

    def read_index(self, segment: int) -> list[tuple[int, int]]:
        """The sparse index of a segment: (sequence, offset) pairs, ascending."""
        try:
            with open(self._index_path(segment), "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return []
        usable = len(raw) - len(raw) % _INDEX_ENTRY.size
        entries = [entry for entry in _INDEX_ENTRY.iter_unpack(raw[:usable])]
        return [(seq, off) for seq, off in entries if off >= SEGMENT_HEADER_SIZE]

    def locate(self, sequence: int) -> Position | None:
        """Where to start reading to find ``sequence`` (None: the log is empty).

        The segment whose first sequence is the greatest not above
        ``sequence``, at the last index entry not above it (a hint: the
        reader checks it).
        """
        segments = self.segments()
        if not segments:
            return None
        at = bisect.bisect_right(segments, sequence) - 1
        segment = segments[max(at, 0)]
        entries = self.read_index(segment)
        at = bisect.bisect_right(entries, (sequence, 1 << 63)) - 1
        if at < 0:
            return Position(segment, SEGMENT_HEADER_SIZE)
        fd = os.open(self.path(segment), os.O_RDONLY)
        try:
            for indexed, offset in reversed(entries[: at + 1]):
                if self.sequence_at(fd, offset) == indexed:
                    return Position(segment, offset)
        finally:
            os.close(fd)
        return Position(segment, SEGMENT_HEADER_SIZE)

    # -- reading (no lock) ----------------------------------------------------

    def read_committed(self, fd: int, offset: int) -> tuple[Parsed, bool]:
        """Parse committed frames from ``offset``; True if the read hit EOF.

        Grows the read window when one batch is larger than it.
        """
        window = _SCAN_WINDOW
        while True:
            data = os.pread(fd, window, offset)
            parsed = parse_frames(data)
            at_eof = len(data) < window
            if parsed.payloads or at_eof or parsed.stop is Stop.BAD:
                return parsed, at_eof
            window *= 2

    def damage_or_torn(self, fd: int, segment: int, stop_offset: int) -> None:
        """Raise CorruptJournalError if valid frames follow a bad one at
        ``stop_offset``; return quietly if nothing valid follows (a torn or
        in-progress tail)."""
        size = os.fstat(fd).st_size
        rest = os.pread(fd, size - stop_offset, stop_offset)
        found = find_valid_frame(rest, 1)
        if found is not None:
            path = self.path(segment)
            raise CorruptJournalError(
                f"journal file {path} has a damaged frame at byte offset {stop_offset} "
                f"followed by valid data at offset {stop_offset + found}; Calliope will not "
                f"skip it. Restore the file from a backup or replica, or truncate it at "
                f"offset {stop_offset} if losing what follows is acceptable",
                path=path,
                offset=stop_offset,
            )

    # -- writing (under the lock) ---------------------------------------------

    def _ensure_lock(self) -> int:
        if self._lock_fd is None:
            private_makedirs(self.directory)
            self._lock_fd = os.open(
                os.path.join(self.directory, "lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
        return self._lock_fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._tail = None

    def append(self, requests: Sequence[AppendRequest]) -> list[list[Record] | BaseException]:
        """Append each request atomically (one write, one fsync for all)."""
        lock = self._ensure_lock()
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return self._append_locked(requests)
        except BaseException:
            self._tail = None  # re-learn the tail from disk next time
            raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def last_committed(self) -> tuple[int, dict[str, int]]:
        """The last sequence and version, catching up with the files (locks)."""
        lock = self._ensure_lock()
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            tail = self._refresh_tail()
            return tail.last_sequence, dict(tail.last_version)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def _append_locked(
        self, requests: Sequence[AppendRequest]
    ) -> list[list[Record] | BaseException]:
        tail = self._refresh_tail()
        if tail.end >= self._segment_bytes:
            tail = self._roll(tail)
        results: list[list[Record] | BaseException] = []
        frames: list[bytes] = []
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
            if not request.events:
                results.append([])
                continue
            if index_entry is None and tail.end + written - tail.index_offset >= self._index_every:
                index_entry = (sequence + 1, tail.end + written)
            records: list[Record] = []
            last = len(request.events) - 1
            for position, (event, packed) in enumerate(
                zip(request.events, request.packed, strict=True)
            ):
                sequence += 1
                version = dict(version)
                version[request.writer] = version.get(request.writer, 0) + 1
                ts = request.timestamp_us
                payload = _record_payload(sequence, request.writer, version, event, packed, ts)
                frame = encode_frame(payload, commit=position == last)
                frames.append(frame)
                written += len(frame)
                records.append(
                    Record(
                        sequence,
                        request.writer,
                        version,
                        ts,
                        event.type_name,
                        event.schema_version,
                        event.data,
                    )
                )
            results.append(records)
        if frames:
            self._write(tail, b"".join(frames))
            tail.last_sequence = sequence
            tail.last_version = version
            if index_entry is not None:
                self._write_index(tail, index_entry)
        return results

    def _write(self, tail: _Tail, data: bytes) -> None:
        fd = os.open(self.path(tail.segment), os.O_WRONLY)
        try:
            written = 0
            try:
                while written < len(data):
                    written += os.pwrite(fd, data[written:], tail.end + written)
                if self._durability == "fsync":
                    os.fdatasync(fd)
            except OSError as error:
                # Leave no partial batch behind: cut back to the committed end.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, tail.end)
                raise StorageError(
                    f"writing to {self.path(tail.segment)} failed: {error}; nothing of this "
                    f"batch was acknowledged. Free disk space or fix permissions and retry"
                ) from error
        finally:
            os.close(fd)
        tail.end += len(data)

    def _write_index(self, tail: _Tail, entry: tuple[int, int]) -> None:
        fd = os.open(self._index_path(tail.segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, _INDEX_ENTRY.pack(*entry))
        finally:
            os.close(fd)
        tail.index_offset = entry[1]

    def _create_segment(self, first: int) -> None:
        private_makedirs(self.directory)
        path = self.path(first)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, SEGMENT_HEADER)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_directory(self.directory)

    def _roll(self, tail: _Tail) -> _Tail:
        first = tail.last_sequence + 1
        self._create_segment(first)
        rolled = _Tail(first, SEGMENT_HEADER_SIZE, tail.last_sequence, tail.last_version)
        self._tail = rolled
        return rolled

    def _refresh_tail(self) -> _Tail:
        """Catch up with the files: appends by others, a torn tail to cut."""
        segments = self.segments()
        if not segments:
            self._create_segment(1)
            self._tail = _Tail(1, SEGMENT_HEADER_SIZE, 0, {})
            return self._tail
        last = segments[-1]
        tail = self._tail
        fd = os.open(self.path(last), os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < SEGMENT_HEADER_SIZE:
                # A roll that died before its header was durable: redo it.
                os.pwrite(fd, SEGMENT_HEADER, 0)
                os.fsync(fd)
                size = SEGMENT_HEADER_SIZE
            if tail is None or tail.segment != last:
                tail = self._tail_from_index(fd, last, size)
            if size != tail.end:
                self._catch_up(fd, tail, size, cut=True)
        finally:
            os.close(fd)
        if tail.last_sequence and not tail.last_version:
            # An empty new segment: the version is the previous segment's last.
            tail.last_version = self._last_version_before(segments)
        self._tail = tail
        return tail

    @staticmethod
    def sequence_at(fd: int, offset: int) -> int | None:
        """The sequence of the record whose frame starts at ``offset``, or
        None if no intact frame starts there (an index entry to ignore)."""
        header = os.pread(fd, FRAME_HEADER, offset)
        if len(header) < FRAME_HEADER:
            return None
        length = int.from_bytes(header[2:6], "little")
        if length > MAX_PAYLOAD:
            return None
        frame = header + os.pread(fd, length, offset + FRAME_HEADER)
        parsed = parse_frames(frame)
        if parsed.stop is Stop.BAD or parsed.stop_offset != len(frame):
            return None
        return decode_record(frame[FRAME_HEADER:]).sequence

    def _tail_from_index(self, fd: int, segment: int, size: int) -> _Tail:
        """A tail positioned at the last index entry that checks out."""
        for sequence, offset in reversed(self.read_index(segment)):
            if offset < size and self.sequence_at(fd, offset) == sequence:
                tail = _Tail(segment, offset, sequence - 1, {})
                tail.index_offset = offset
                return tail
        return _Tail(segment, SEGMENT_HEADER_SIZE, segment - 1, {})

    def _last_version_before(self, segments: list[int]) -> dict[str, int]:
        for segment in reversed(segments[:-1]):
            fd = os.open(self.path(segment), os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                tail = self._tail_from_index(fd, segment, size)
                self._catch_up(fd, tail, size, cut=False)
            finally:
                os.close(fd)
            if tail.last_version:
                return tail.last_version
        return {}

    def _catch_up(self, fd: int, tail: _Tail, size: int, *, cut: bool) -> None:
        """Read what lies after ``tail.end``, raising on damage; cut an
        incomplete tail if ``cut`` (only under the lock, in the last segment)."""
        while tail.end < size:
            parsed, at_eof = self.read_committed(fd, tail.end)
            if parsed.payloads:
                record = decode_record(parsed.payloads[-1])
                tail.last_sequence = record.sequence
                tail.last_version = dict(record.version)
            stopped_at = tail.end + parsed.stop_offset
            tail.end += parsed.committed_end
            if parsed.stop is Stop.END or (parsed.stop is Stop.INCOMPLETE and not at_eof):
                continue
            self.damage_or_torn(fd, tail.segment, stopped_at)
            if cut:
                self._cut(fd, tail, size)
            return

    def _cut(self, fd: int, tail: _Tail, size: int) -> None:
        log.warning(
            "cutting an incomplete tail of %d bytes from %s at offset %d "
            "(a write that never completed, so never acknowledged)",
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
        tail.index_offset = kept[-1][1] if kept else SEGMENT_HEADER_SIZE


def unpack_records(payloads: list[bytes]) -> list[Record]:
    """Decode frame payloads into records."""
    unpack = msgpack.unpackb
    return [Record(*unpack(p, raw=False, strict_map_key=False)) for p in payloads]


class ReadStep(NamedTuple):
    """One step of a reader: records found, where to continue, and whether
    the reader has reached the end of what is committed now."""

    records: list[Record]
    position: Position
    at_end: bool


def read_step(log: SegmentLog, position: Position) -> ReadStep:
    """Read the committed records at ``position`` (blocking; no lock taken).

    Moves to the next segment when this one is finished; a segment is
    finished once a later one exists (the writer rolls under the lock after
    its last batch there), and it is read once more after seeing that, so a
    batch appended just before the roll is not missed.
    """
    try:
        fd = os.open(log.path(position.segment), os.O_RDONLY)
    except FileNotFoundError:
        return ReadStep([], position, True)
    try:
        parsed, _ = log.read_committed(fd, position.offset)
        after = Position(position.segment, position.offset + parsed.committed_end)
        if parsed.payloads:
            return ReadStep(unpack_records(parsed.payloads), after, False)
        stopped_at = position.offset + parsed.stop_offset
        if parsed.stop is not Stop.END:
            log.damage_or_torn(fd, position.segment, stopped_at)
        later = [segment for segment in log.segments() if segment > position.segment]
        if not later:
            return ReadStep([], after, True)
        parsed, _ = log.read_committed(fd, after.offset)
        if parsed.payloads:
            return ReadStep(
                unpack_records(parsed.payloads),
                Position(after.segment, after.offset + parsed.committed_end),
                False,
            )
        if parsed.stop is not Stop.END:
            path = log.path(position.segment)
            offset = after.offset + parsed.stop_offset
            raise CorruptJournalError(
                f"journal file {path} ends in an incomplete frame at byte offset {offset}, "
                f"but a later segment exists, so it was acknowledged data. Restore the file "
                f"from a backup or replica",
                path=path,
                offset=offset,
            )
        return ReadStep([], Position(later[0], SEGMENT_HEADER_SIZE), False)
    finally:
        os.close(fd)
