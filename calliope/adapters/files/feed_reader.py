"""The file store's feed port: reading the feed index and the logs it names.

A page reads entries from the index (feed_index.py, which says why the
order is safe), passes over those of streams the reader does not want
without touching their logs, and reads the batches of the rest a log at a
time: a cursor per log (feed_log_reads.py) remembers where the last page
stopped there and keeps the bytes it read ahead, so reading on usually
costs no system call; anything else goes through the general reader. So a
page costs O(entries + events read), and a live feed's wake-up O(new
entries), however many streams the store has. Memory: one page, plus
bounded caches (ids of ``_IDS`` logs, ``_CURSORS`` cursors of which the
``_BUFFERED`` most recently used keep their read-ahead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from calliope.adapters.files.changes import FileChanges
from calliope.adapters.files.extent import writer_busy
from calliope.adapters.files.feed_index import FeedIndex, IndexEntry
from calliope.adapters.files.feed_log_reads import LogCursor
from calliope.adapters.files.fsutil import storage_errors
from calliope.adapters.files.page_reads import in_range
from calliope.adapters.files.reader import read_step
from calliope.adapters.files.segment_files import Position
from calliope.adapters.files.segment_log import SegmentLog
from calliope.core.ids import in_feed
from calliope.core.replication import RecordBatch
from calliope.shell.ports import FeedEntry, FeedPage, Watcher

__all__ = ["FileFeed"]

logger = logging.getLogger("calliope.files")

_IDS = 65536
_CURSORS = 16384  # logs whose cursor (where a feed stopped there, ~200 bytes) is kept
_BUFFERED = 1024  # cursors that also keep their read-ahead (16 KiB, at most ~36)
_LOOK_AT = 4  # entries looked at per event asked for, at most (others' entries are passed over)
_MIN_WINDOW = 4096
_MAX_WINDOW = 256 * 1024

K = TypeVar("K")
LogKey = tuple[str, str | None]  # stream id, replica id (None: the plain log)
MakeLog = Callable[[str, str | None], SegmentLog]


def _window(events: int, per_event: float) -> int:
    """Bytes to read for ``events`` events of about ``per_event`` bytes."""
    return int(min(_MAX_WINDOW, max(_MIN_WINDOW, events * per_event * 1.25 + 512)))


class _Planned(NamedTuple):
    entry: IndexEntry
    key: LogKey


class FileFeed:
    """Implements :class:`calliope.shell.ports.FeedPort` on a directory."""

    def __init__(
        self, root: str, index: FeedIndex, changes: FileChanges, make_log: MakeLog
    ) -> None:
        self._root = root
        self._index = index
        self._changes = changes
        self._make_log = make_log
        self._streams: OrderedDict[bytes, str | None] = OrderedDict()
        self._replicas: OrderedDict[tuple[bytes, bytes], str | None] = OrderedDict()
        self._cursors: OrderedDict[LogKey, LogCursor] = OrderedDict()
        self._buffered: OrderedDict[LogKey, LogCursor] = OrderedDict()
        self._keys: dict[tuple[bytes, bytes | None], LogKey | None] = {}
        self._events_per_entry = 1.0  # running estimate: how many index entries a page reads

    def watch_feed(self) -> contextlib.AbstractAsyncContextManager[Watcher]:
        return self._changes.watch_all()

    async def read_feed(self, start: int, prefix: str | None, *, limit: int) -> FeedPage:
        with storage_errors("reading the store's feed"):
            return await asyncio.to_thread(self._page, start, prefix, max(1, limit))

    # -- one page (blocking) ------------------------------------------------------

    def _page(self, start: int, prefix: str | None, limit: int) -> FeedPage:
        next_entry = start
        planned: list[_Planned] = []
        events = 0
        looked = 0
        chunk = max(16, min(4096, int(limit / self._events_per_entry) + 8))
        keys = self._keys
        while events < limit and looked < limit * _LOOK_AT + 64:
            # The index is read in chunks of about what a page needs, growing
            # while others' entries are passed over.
            entries = self._index.read(next_entry, chunk)
            if not entries:
                break
            for entry in entries:
                if events >= limit:
                    break
                looked += 1
                next_entry = entry.number + 1
                if entry.void:
                    continue
                names = (entry.stream, entry.replica)
                key = keys[names] if names in keys else self._log_key(entry)
                if key is None or not in_feed(key[0], prefix):
                    continue
                planned.append(_Planned(entry, key))
                events += entry.events
            chunk = min(chunk * 2, 4096)
        if looked:
            self._events_per_entry = max(1.0, 0.5 * self._events_per_entry + 0.5 * events / looked)
        end = self._index.end()
        more = next_entry < end  # (past an entry being copied in, too)
        if not planned:
            return FeedPage([], next_entry, more, end)
        found = self._read_logs(planned)
        result: list[FeedEntry] = []
        for item in planned:
            entry, key = item.entry, item.key
            batches = found.get(entry.number)
            if batches is None:
                batches = self._settle_or_wait(item)
                if batches is None:  # its writer is at work: stop before it
                    return FeedPage(result, entry.number, False, end)
            for batch in batches:
                result.append(FeedEntry(entry.number, key[0], key[1], batch))
        return FeedPage(result, next_entry, more, end)

    def _settle_or_wait(self, item: _Planned) -> list[RecordBatch] | None:
        """The batches of an entry not found committed: None while its log's
        writer is at work; else read again (a dead writer's frames are
        committed by the read), and [] if the write never completed."""
        entry, key = item.entry, item.key
        log = self._make_log(*key)
        try:
            if writer_busy(log.directory):
                return None
            last = entry.first_sequence + entry.events - 1
            batches = self._read_log(key, log, entry.first_sequence, last, None)
            return [batch for batch in batches if batch.feed_entry == entry.number]
        finally:
            log.close()

    def _read_logs(self, planned: list[_Planned]) -> dict[int, list[RecordBatch]]:
        """Each planned entry's committed batches that carry its number: per
        log, the quick path where it applies (feed_log_reads.py), else the
        general reader."""
        by_log: dict[LogKey, list[IndexEntry]] = {}
        for item in planned:
            entries = by_log.get(item.key)
            if entries is None:
                by_log[item.key] = [item.entry]
            else:
                entries.append(item.entry)
        found: dict[int, list[RecordBatch]] = {}
        cursors = self._cursors
        for key, entries in by_log.items():
            first = entries[0].first_sequence
            final = entries[-1]
            last = final.first_sequence + final.events - 1
            cursor = cursors.get(key)
            batches = None if cursor is None else cursor.read_on(first, last)
            if cursor is not None:
                cursors.move_to_end(key)
                self._keep_buffer(key, cursor)
            if batches is None:
                log = self._make_log(*key)
                try:
                    batches = self._read_log(key, log, first, last, cursor, len(entries))
                finally:
                    log.close()
            if len(entries) == 1:  # (an entry without a committed batch stays out)
                number = entries[0].number
                mine = [b for b in batches if b.feed_entry == number]
                if mine:
                    found[number] = mine
            else:
                wanted = {e.number for e in entries}
                for batch in batches:
                    if batch.feed_entry in wanted:
                        found.setdefault(batch.feed_entry, []).append(batch)
        return found

    def _read_log(
        self,
        key: LogKey,
        log: SegmentLog,
        first: int,
        last: int,
        cursor: LogCursor | None,
        frames: int = 1,
    ) -> list[RecordBatch]:
        """The general reader: the committed batches of ``first..last``, in
        ``frames`` frames or more (so it decodes none past ``last``)."""
        if cursor is not None and cursor.next_sequence == first:
            position: Position | None = cursor.position
        else:
            position = log.locate(first)
        per_event = cursor.per_event if cursor is not None else 256.0
        batches: list[RecordBatch] = []
        if position is None:
            return batches
        expected: int | None = None
        while True:
            needed = last - (first if expected is None else expected) + 1
            step = read_step(log, position, limit=frames, window=_window(needed, per_event))
            wanted, expected = in_range(log, step, position, expected, first, last)
            frames = max(1, frames - len(step.batches))
            if step.batches and step.position.segment == position.segment:
                moved = step.position.offset - position.offset
                events = sum(len(b.items) for b in step.batches)
                per_event = 0.5 * per_event + 0.5 * moved / max(1, events)
            batches.extend(wanted)
            position = step.position
            if step.at_end or (expected is not None and expected > last):
                break
        if expected is not None:  # (the position is just after that sequence's batch)
            if cursor is None:
                cursor = self._cursors[key] = LogCursor(log.directory)
                if len(self._cursors) > _CURSORS:
                    self._buffered.pop(self._cursors.popitem(last=False)[0], None)
                self._keep_buffer(key, cursor)
            cursor.moved_to(expected, position, per_event)
        return batches

    def _keep_buffer(self, key: LogKey, cursor: LogCursor) -> None:
        """``cursor`` is the most recently used; the least recently used
        beyond ``_BUFFERED`` drops its read-ahead (it keeps its place)."""
        buffered = self._buffered
        buffered[key] = cursor
        buffered.move_to_end(key)
        if len(buffered) > _BUFFERED:
            buffered.popitem(last=False)[1].drop_buffer()

    def close(self) -> None:
        """Drop what the quick path keeps."""
        self._cursors.clear()
        self._buffered.clear()

    # -- which log an entry names -------------------------------------------------

    def _log_key(self, entry: IndexEntry) -> LogKey | None:
        """The (stream id, replica id) an entry names, remembered (bounded)."""
        key = self._resolve(entry)
        if len(self._keys) >= _IDS:
            self._keys.clear()
        self._keys[(entry.stream, entry.replica)] = key
        return key

    def _resolve(self, entry: IndexEntry) -> LogKey | None:
        stream_id = self._stream_id(entry.stream)
        if stream_id is None:
            return None
        if entry.replica is None:
            return stream_id, None
        replica_id = self._replica_id(entry.stream, entry.replica)
        return None if replica_id is None else (stream_id, replica_id)

    def _stream_directory(self, digest: bytes) -> str:
        name = digest.hex()
        return os.path.join(self._root, "streams", name[:2], name)

    def _stream_id(self, digest: bytes) -> str | None:
        if digest in self._streams:
            self._streams.move_to_end(digest)
            return self._streams[digest]
        path = os.path.join(self._stream_directory(digest), "id")
        try:
            with open(path, "rb") as handle:
                stream_id: str | None = handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            logger.warning("the feed passes over entries of %s: %s", path, error)
            stream_id = None
        return _remember(self._streams, digest, stream_id)

    def _replica_id(self, stream: bytes, prefix: bytes) -> str | None:
        key = (stream, prefix)
        if key in self._replicas:
            self._replicas.move_to_end(key)
            return self._replicas[key]
        replicas = os.path.join(self._stream_directory(stream), "replicas")
        start = prefix.hex()
        replica_id: str | None = None
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for name in os.listdir(replicas):
                if name.startswith(start):
                    with open(os.path.join(replicas, name, "id"), "rb") as handle:
                        replica_id = handle.read().decode("utf-8")
                    break
        if replica_id is None:
            logger.warning("the feed passes over entries of a replica log in %s", replicas)
        return _remember(self._replicas, key, replica_id)


def _remember(cache: OrderedDict[K, str | None], key: K, value: str | None) -> str | None:
    cache[key] = value
    if len(cache) > _IDS:
        cache.popitem(last=False)
    return value
