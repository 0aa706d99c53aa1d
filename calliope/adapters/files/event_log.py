"""The file adapter's event log port: streams as segment logs in a directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence

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
from calliope.shell.ports import Durability, NewEvent, RecordBatch

__all__ = ["FileEventLog"]

_HINTS = 256


class _Stream:
    """Everything this process holds for one stream's plain log."""

    def __init__(self, log: SegmentLog) -> None:
        self.log = log
        self.committer: GroupCommitter[AppendRequest, RecordBatch | None] = GroupCommitter(
            log.append, log.try_append
        )
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
    ) -> RecordBatch | None:
        stream = self._stream(stream_id)
        items = [pack_data((e.type_name, e.schema_version, e.data)) for e in events]
        if not stream.ready:
            await asyncio.to_thread(id_directory, self._root, "streams", stream_id)
            stream.ready = True
        size = sum(map(len, items))
        request = AppendRequest(writer, events, items, size, expected_sequence, timestamp_us)
        batch = await stream.committer.submit(request)
        if batch is not None:
            stream.signal.fire()
        return batch

    async def last_sequence(self, stream_id: str) -> int:
        return await asyncio.to_thread(self._stream(stream_id).log.peek_last)

    async def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        stream = self._stream(stream_id)
        log = stream.log
        position = stream.hints.get(from_sequence)
        if position is None:
            position = await asyncio.to_thread(log.locate, from_sequence)
            if position is None:
                return
        expected: int | None = None
        while True:
            step = await asyncio.to_thread(read_step, log, position)
            if step.batches:
                if expected is None:
                    expected = step.batches[0].first_sequence
                wanted: list[RecordBatch] = []
                for batch in step.batches:
                    if batch.first_sequence != expected:
                        raise CorruptJournalError(
                            f"stream {stream_id!r} holds sequence {batch.first_sequence} in "
                            f"{log.path(position.segment)} where {expected} belongs; restore "
                            f"it from a backup",
                            path=log.path(position.segment),
                            offset=position.offset,
                        )
                    expected = batch.last_sequence + 1
                    part = batch.sliced(from_sequence, to_sequence)
                    if part is not None:
                        wanted.append(part)
                if wanted:
                    yield wanted
                if to_sequence is not None and expected > to_sequence:
                    return
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
