"""The file adapter's event log port: streams as segment logs in a directory.

A plain stream is one log (``streams/<h2>/<h>/log``) that any process may
extend. A replicated stream is one log per replica
(``streams/<h2>/<h>/replicas/<replica hash>/``, with the replica id in an
``id`` file), each written only by the app holding that replica id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from calliope.adapters.files.fsutil import (
    private_makedirs,
    storage_error,
    storage_errors,
    write_file_atomically,
)
from calliope.adapters.files.group_commit import GroupCommitter
from calliope.adapters.files.layout import id_digest, id_directory
from calliope.adapters.files.reader import ReadStep, read_step
from calliope.adapters.files.segment_files import Position
from calliope.adapters.files.segment_log import SegmentLog
from calliope.adapters.files.segment_writer import AppendRequest
from calliope.adapters.notify import Signal
from calliope.adapters.packing import pack_data
from calliope.errors import CorruptJournalError
from calliope.shell.ports import Durability, NewEvent, RecordBatch

__all__ = ["FileEventLog"]

_HINTS = 256
_OPEN_LOGS = 128  # logs whose files stay open between appends (the rest reopen)


class _LogHandle:
    """Everything this process holds for one log (plain or one replica's)."""

    def __init__(self, log: SegmentLog, signal: Signal) -> None:
        self.log = log
        self.committer: GroupCommitter[AppendRequest, RecordBatch | None] = GroupCommitter(
            log.append, log.try_append
        )
        self.signal = signal
        self.ready = False  # the directories and id files exist
        # next sequence -> where a reader ended: later reads start there.
        self.hints: OrderedDict[int, Position] = OrderedDict()

    def remember(self, sequence: int, position: Position) -> None:
        self.hints[sequence] = position
        if len(self.hints) > _HINTS:
            self.hints.popitem(last=False)


def _in_range(
    log: SegmentLog,
    step: ReadStep,
    position: Position,
    expected: int | None,
    from_sequence: int,
    to_sequence: int | None,
) -> tuple[list[RecordBatch], int | None]:
    """The step's batches cut to the range, checking that sequences follow
    on from ``expected``; and the sequence expected next."""
    wanted: list[RecordBatch] = []
    for batch in step.batches:
        if expected is not None and batch.first_sequence != expected:
            raise _gap(log, position, expected, batch.first_sequence)
        expected = batch.last_sequence + 1
        part = batch.sliced(from_sequence, to_sequence)
        if part is not None:
            wanted.append(part)
    return wanted, expected


def _read_since(
    log: SegmentLog, position: Position | None, from_sequence: int
) -> tuple[list[RecordBatch], Position | None, int | None]:
    """Blocking: every committed batch from ``from_sequence`` to the end, cut
    to it; the end position and the next sequence there."""
    if position is None:
        position = log.locate(from_sequence)
        if position is None:
            return [], None, None
    found: list[RecordBatch] = []
    expected: int | None = None
    while True:
        step = read_step(log, position)
        wanted, expected = _in_range(log, step, position, expected, from_sequence, None)
        found.extend(wanted)
        position = step.position
        if step.at_end:
            return found, position, expected


def _gap(log: SegmentLog, position: Position, expected: int, found: int) -> CorruptJournalError:
    path = log.path(position.segment)
    return CorruptJournalError(
        f"stream {log.stream_id!r} holds sequence {found} in {path} where {expected} "
        f"belongs; restore it from a backup",
        path=path,
        offset=position.offset,
    )


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
        self._logs: dict[tuple[str, str | None], _LogHandle] = {}
        self._signals: dict[str, Signal] = {}
        self._replica_names: dict[str, str] = {}  # replica directory name -> replica id
        # Logs with open files, least recently appended first: an app that
        # writes many streams must not run out of file descriptors.
        self._open: OrderedDict[tuple[str, str | None], _LogHandle] = OrderedDict()

    # -- where things are -------------------------------------------------------

    def _stream_directory(self, stream_id: str) -> str:
        digest = id_digest(stream_id)
        return os.path.join(self._root, "streams", digest[:2], digest)

    def _segment_log(self, stream_id: str, replica_id: str | None) -> SegmentLog:
        stream_directory = self._stream_directory(stream_id)
        if replica_id is None:
            directory = os.path.join(stream_directory, "log")
        else:
            directory = os.path.join(stream_directory, "replicas", id_digest(replica_id))
        return SegmentLog(
            directory,
            stream_id=stream_id,
            durability=self._durability,
            segment_bytes=self._segment_bytes,
        )

    def _log(self, stream_id: str, replica_id: str | None) -> _LogHandle:
        key = (stream_id, replica_id)
        entry = self._logs.get(key)
        if entry is None:
            signal = self._signals.setdefault(stream_id, Signal())
            entry = self._logs[key] = _LogHandle(self._segment_log(stream_id, replica_id), signal)
        return entry

    def _prepare(self, stream_id: str, replica_id: str | None) -> None:
        """Create the stream's directory and id files (blocking)."""
        id_directory(self._root, "streams", stream_id)
        if replica_id is not None:
            directory = self._log(stream_id, replica_id).log.directory
            id_path = os.path.join(directory, "id")
            if not os.path.exists(id_path):
                private_makedirs(directory)
                write_file_atomically(id_path, replica_id.encode("utf-8"))

    def _replica_ids(self, stream_id: str) -> list[str]:
        """The replicas with a log in this replicated stream (blocking)."""
        directory = os.path.join(self._stream_directory(stream_id), "replicas")
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        replicas = []
        for name in names:
            replica = self._replica_names.get(name)
            if replica is None:
                try:
                    with open(os.path.join(directory, name, "id"), "rb") as handle:
                        replica = handle.read().decode("utf-8")
                except FileNotFoundError:
                    continue  # being created right now
                self._replica_names[name] = replica
            replicas.append(replica)
        return sorted(replicas)

    # -- writing ----------------------------------------------------------------

    async def _append(
        self,
        entry: _LogHandle,
        stream_id: str,
        replica_id: str | None,
        request: Callable[[list[bytes], int], AppendRequest],
        events: Sequence[NewEvent],
    ) -> RecordBatch | None:
        items = [pack_data((e.type_name, e.schema_version, e.data)) for e in events]
        try:  # (no context manager: this is the hot path of every persist)
            if not entry.ready:
                await asyncio.to_thread(self._prepare, stream_id, replica_id)
                entry.ready = True
            batch = await entry.committer.submit(request(items, sum(map(len, items))))
        except OSError as error:
            raise storage_error(f"appending to stream {stream_id!r}", error) from error
        finally:
            self._keep_open((stream_id, replica_id), entry)
        if batch is not None:
            entry.signal.fire()
        return batch

    def _keep_open(self, key: tuple[str, str | None], entry: _LogHandle) -> None:
        self._open[key] = entry
        self._open.move_to_end(key)
        while len(self._open) > _OPEN_LOGS:
            oldest, candidate = next(iter(self._open.items()))
            if not candidate.committer.idle:
                break  # busy: closed on a later append
            del self._open[oldest]
            candidate.log.close()

    async def append(
        self,
        stream_id: str,
        writer: str,
        events: Sequence[NewEvent],
        *,
        expected_sequence: int | None,
        timestamp_us: int,
    ) -> RecordBatch | None:
        return await self._append(
            self._log(stream_id, None),
            stream_id,
            None,
            lambda items, size: AppendRequest(
                writer, events, items, size, expected_sequence, timestamp_us
            ),
            events,
        )

    async def append_replica(
        self,
        stream_id: str,
        replica_id: str,
        events: Sequence[NewEvent],
        *,
        observed: Mapping[str, int],
        timestamp_us: int,
    ) -> RecordBatch | None:
        return await self._append(
            self._log(stream_id, replica_id),
            stream_id,
            replica_id,
            lambda items, size: AppendRequest(
                replica_id, events, items, size, None, timestamp_us, dict(observed)
            ),
            events,
        )

    # -- reading ----------------------------------------------------------------

    async def last_sequence(self, stream_id: str) -> int:
        with storage_errors(f"reading stream {stream_id!r}"):
            return await asyncio.to_thread(self._log(stream_id, None).log.peek_last)

    def read(
        self, stream_id: str, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        return self._read(self._log(stream_id, None), from_sequence, to_sequence)

    def read_replica(
        self, stream_id: str, replica_id: str, from_sequence: int, to_sequence: int | None = None
    ) -> AsyncIterator[list[RecordBatch]]:
        return self._read(self._log(stream_id, replica_id), from_sequence, to_sequence)

    async def _read(
        self, entry: _LogHandle, from_sequence: int, to_sequence: int | None
    ) -> AsyncIterator[list[RecordBatch]]:
        log = entry.log
        position = entry.hints.get(from_sequence)
        if position is None:
            with storage_errors(f"reading stream {log.stream_id!r}"):
                position = await asyncio.to_thread(log.locate, from_sequence)
            if position is None:
                return
        expected: int | None = None
        # The next step is read in a worker thread while the caller decodes
        # this one.
        pending = asyncio.ensure_future(asyncio.to_thread(read_step, log, position))
        try:
            while True:
                with storage_errors(f"reading stream {log.stream_id!r}"):
                    step = await pending
                wanted, expected = _in_range(
                    log, step, position, expected, from_sequence, to_sequence
                )
                done = to_sequence is not None and expected is not None and expected > to_sequence
                position = step.position
                if step.at_end or done:
                    if step.at_end and expected is not None:
                        entry.remember(expected, position)
                    if wanted:
                        yield wanted
                    return
                pending = asyncio.ensure_future(asyncio.to_thread(read_step, log, position))
                if wanted:
                    yield wanted
        finally:
            if not pending.done():
                pending.cancel()

    async def replicas(self, stream_id: str) -> list[str]:
        with storage_errors(f"listing the replicas of stream {stream_id!r}"):
            return await asyncio.to_thread(self._replica_ids, stream_id)

    async def replica_version(self, stream_id: str, replica_id: str) -> dict[str, int]:
        log = self._log(stream_id, replica_id).log
        with storage_errors(f"reading replica {replica_id!r} of stream {stream_id!r}"):
            return await asyncio.to_thread(log.peek_last_version)

    async def read_new(self, stream_id: str, known: Mapping[str, int]) -> list[RecordBatch]:
        logs = dict(self._logs)  # read-only in the worker thread

        def read_all() -> list[tuple[str, list[RecordBatch], Position | None, int | None]]:
            """One hop: list the replicas, read each from what is known."""
            results = []
            for replica in self._replica_ids(stream_id):
                entry = logs.get((stream_id, replica))
                first = known.get(replica, 0) + 1
                if entry is None:  # reading needs no state: a fresh handle will do
                    log, position = self._segment_log(stream_id, replica), None
                else:
                    log, position = entry.log, entry.hints.get(first)
                results.append((replica, *_read_since(log, position, first)))
            return results

        found: list[RecordBatch] = []
        with storage_errors(f"reading stream {stream_id!r}"):
            results = await asyncio.to_thread(read_all)
        for replica, batches, position, next_sequence in results:
            found.extend(batches)
            if position is not None and next_sequence is not None:
                self._log(stream_id, replica).remember(next_sequence, position)
        return found

    # -- watching ---------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def watch(self, stream_id: str) -> AsyncIterator[_FileWatcher]:
        log = self._log(stream_id, None).log
        yield _FileWatcher(self._signals[stream_id], self._poll_interval, lambda: _log_state(log))

    @contextlib.asynccontextmanager
    async def watch_replicated(self, stream_id: str) -> AsyncIterator[_FileWatcher]:
        directory = os.path.join(self._stream_directory(stream_id), "replicas")
        signal = self._signals.setdefault(stream_id, Signal())
        yield _FileWatcher(signal, self._poll_interval, lambda: _replicas_state(directory))

    async def aclose(self) -> None:
        entries = list(self._logs.values())
        for entry in entries:
            await entry.committer.aclose()
        for entry in entries:
            entry.log.close()
        self._logs.clear()
        self._open.clear()


def _log_state(log: SegmentLog) -> tuple[int, int]:
    """(last segment, its size): grows with every append to the log."""
    segments = log.segments()
    if not segments:
        return (0, 0)
    try:
        return (segments[-1], os.stat(log.path(segments[-1])).st_size)
    except FileNotFoundError:
        return (segments[-1], 0)


def _replicas_state(directory: str) -> tuple[tuple[str, int, int], ...]:
    """Every replica log's (name, last segment, size)."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return ()
    state = []
    for name in names:
        segments = sorted(
            n for n in os.listdir(os.path.join(directory, name)) if n.endswith(".seg")
        )
        if segments:
            try:
                size = os.stat(os.path.join(directory, name, segments[-1])).st_size
            except FileNotFoundError:
                size = 0
            state.append((name, int(segments[-1][:-4]), size))
    return tuple(state)


class _FileWatcher:
    """Wakes on this process's appends at once, on other processes' by polling
    the files every ``interval`` seconds."""

    def __init__(self, signal: Signal, interval: float, state: Callable[[], object]) -> None:
        self._signal = signal
        self._interval = interval
        self._state_of = state
        self._generation = signal.generation
        self._state = state()

    async def wait(self) -> None:
        while True:
            generation = await self._signal.wait(self._generation, self._interval)
            state = self._state_of()
            if generation != self._generation or state != self._state:
                self._generation = generation
                self._state = state
                return
