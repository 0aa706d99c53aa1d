"""The file adapter's event log port: streams as segment logs in a directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence

from calliope.adapters.files.framing import SEGMENT_HEADER_SIZE as HEADER
from calliope.adapters.files.group_commit import GroupCommitter
from calliope.adapters.files.layout import id_digest, id_directory
from calliope.adapters.files.segment_log import (
    AppendRequest,
    Position,
    SegmentLog,
    read_step,
)
from calliope.adapters.notify import Signal
from calliope.adapters.packing import pack_data
from calliope.errors import CorruptJournalError
from calliope.shell.ports import Durability, NewEvent, Record

__all__ = ["FileEventLog"]

_HINTS = 256


class _Stream:
    """Everything this process holds for one stream's plain log."""

    def __init__(self, log: SegmentLog) -> None:
        self.log = log
        self.committer: GroupCommitter[AppendRequest, list[Record]] = GroupCommitter(log.append)
        self.signal = Signal()
        self.ready = False  # the stream's directory and id file exist
        # next sequence -> where a reader ended: later reads start there.
        self.hints: OrderedDict[int, Position] = OrderedDict()

    def remember(self, sequence: int, position: Position) -> None:
        self.hints[sequence] = position
        if len(self.hints) > _HINTS:
            self.hints.popitem(last=False)


class FileEventLog:
    """Implements :class:`calliope.shell.ports.EventLogPort` on a directory."""

    def __init__(
        self,
        root: str,
        *,
        durability: Durability,
        segment_bytes: int,
        poll_interval: float,
    ) -> None:
        self._root = root
        self._durability = durability
        self._segment_bytes = segment_bytes
        self._poll_interval = poll_interval
        self._streams: dict[str, _Stream] = {}

    def _stream(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            digest = id_digest(stream_id)
            directory = os.path.join(self._root, "streams", digest[:2], digest, "log")
            log = SegmentLog(
                directory,
                stream_id=stream_id,
                durability=self._durability,
                segment_bytes=self._segment_bytes,
            )
            stream = self._streams[stream_id] = _Stream(log)
        return stream

    async def append(
        self,
        stream_id: str,
        writer: str,
        events: Sequence[NewEvent],
        *,
        expected_sequence: int | None,
        timestamp_us: int,
    ) -> list[Record]:
        stream = self._stream(stream_id)
        packed = [pack_data(event.data) for event in events]
        if not stream.ready:
            await asyncio.to_thread(id_directory, self._root, "streams", stream_id)
            stream.ready = True
        request = AppendRequest(writer, events, packed, expected_sequence, timestamp_us)
        records = await stream.committer.submit(request)
        if records:
            stream.signal.fire()
        return records

    async def last_sequence(self, stream_id: str) -> int:
        stream = self._stream(stream_id)
        if not await asyncio.to_thread(stream.log.segments):
            return 0
        sequence, _ = await asyncio.to_thread(stream.log.last_committed)
        return sequence

    async def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[Record]]:
        stream = self._stream(stream_id)
        log = stream.log
        position = stream.hints.get(from_sequence)
        from_index = position is None
        if position is None:
            position = await asyncio.to_thread(log.locate, from_sequence)
            if position is None:
                return
        expected: int | None = None
        while True:
            step = await asyncio.to_thread(read_step, log, position)
            records = step.records
            if records:
                first = records[0].sequence
                if expected is None:
                    if first > from_sequence and from_index and position.offset != HEADER:
                        # A stale index entry: read this segment from its start.
                        position, from_index = Position(position.segment, HEADER), False
                        continue
                    expected = first
                if first != expected or records[-1].sequence != expected + len(records) - 1:
                    raise CorruptJournalError(
                        f"stream {stream_id!r} has a gap in its sequences after {expected - 1} "
                        f"in {log.path(position.segment)}; restore it from a backup",
                        path=log.path(position.segment),
                        offset=position.offset,
                    )
                expected += len(records)
                if first < from_sequence:
                    records = [r for r in records if r.sequence >= from_sequence]
                if to_sequence is not None and expected > to_sequence:
                    records = [r for r in records if r.sequence <= to_sequence]
                    if records:
                        yield records
                    return
                if records:
                    yield records
            position = step.position
            if step.at_end:
                if expected is not None:
                    stream.remember(expected, position)
                return

    @contextlib.asynccontextmanager
    async def watch(self, stream_id: str) -> AsyncIterator[_FileWatcher]:
        stream = self._stream(stream_id)
        watcher = _FileWatcher(stream, self._poll_interval)
        yield watcher

    async def aclose(self) -> None:
        for stream in self._streams.values():
            await stream.committer.aclose()
        for stream in self._streams.values():
            stream.log.close()
        self._streams.clear()


class _FileWatcher:
    """Wakes on this process's appends at once, on other processes' by polling
    the log's files (their sizes and the segment list) every ``interval``."""

    def __init__(self, stream: _Stream, interval: float) -> None:
        self._stream = stream
        self._interval = interval
        self._generation = stream.signal.generation
        self._state = self._files_state()

    def _files_state(self) -> tuple[int, int]:
        """(last segment, its size): grows with every append by anyone."""
        segments = self._stream.log.segments()
        if not segments:
            return (0, 0)
        try:
            return (segments[-1], os.stat(self._stream.log.path(segments[-1])).st_size)
        except FileNotFoundError:
            return (segments[-1], 0)

    async def wait(self) -> None:
        signal = self._stream.signal
        while True:
            generation = await signal.wait(self._generation, self._interval)
            if generation != self._generation:
                self._generation = generation
                self._state = self._files_state()
                return
            state = self._files_state()
            if state != self._state:
                self._state = state
                return
