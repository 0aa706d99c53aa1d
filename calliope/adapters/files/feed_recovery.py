"""Restoring the feed index from the logs' frames: after a reboot, or
whole when it was lost or moved aside.

Every frame of a write carries the number of the write's feed entry
(feed_index.py), and a log's numbers grow with its sequences. So the writes
numbered ``durable`` or more are found at the ends of the logs: per log,
segments are read from the last one back to the first that starts below
``durable``. O(logs + bytes written since the entry ``durable`` was taken);
from 0 (the whole index), O(size of the logs).

The index is restored in place (so that every process's open descriptor
stays good): each write found is put at its number as it is found, voids
fill the gaps, what lies past the last is cut, and the file is fsynced.
The caller marks the sync record "restoring" first, so that a crash during
a restore makes the next open restore again. Memory: a window of one log,
and a bit per entry restored.

A damaged log does not stop a restore: the batches it holds before the
damage are found, the damage is logged at error level (file and offset),
and the entries of what lies past it are left void (feed_index.py): those
events are not in any reader's log either until the log is restored or
repaired, and a repaired log's new writes take new entries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterator

from calliope.adapters.files.feed_index import ENTRY_SIZE, VOID_ENTRY, log_digests, pack_entry
from calliope.adapters.files.framing import SEGMENT_HEADER_SIZE
from calliope.adapters.files.reader import read_step
from calliope.adapters.files.segment_files import Position
from calliope.adapters.files.segment_log import SegmentLog
from calliope.errors import CorruptJournalError

__all__ = ["numbered_writes", "restore_index"]

logger = logging.getLogger("calliope.files")

Write = tuple[bytes, bytes | None, int, int]  # stream digest, replica prefix, first, count
_NEVER = 1 << 62  # a segment size no segment reaches
_NO_BATCH = -1  # (a segment's first number, when it holds no batch)
_VOIDS = 4096  # void entries written at once


def restore_index(root: str, path: str, durable: int) -> tuple[int, int]:
    """Restore the index ``path`` from entry ``durable`` on: every write
    numbered ``durable`` or more found in the logs' frames, voids where none
    is, nothing past the last; the number after the last entry, and how
    many writes were found. Blocking; see the module docstring."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # (no O_APPEND: pwrite appends then)
    try:
        found = bytearray()  # a bit per number from ``durable`` on: a write was found
        end = durable
        writes = 0
        for number, (stream, replica, first, count) in numbered_writes(root, durable):
            os.pwrite(fd, pack_entry(stream, replica, first, count), number * ENTRY_SIZE)
            bit = number - durable
            if bit // 8 >= len(found):
                found.extend(bytes(bit // 8 - len(found) + 1))
            found[bit // 8] |= 1 << (bit % 8)
            end = max(end, number + 1)
            writes += 1
        _write_voids(fd, durable, end, found)
        os.ftruncate(fd, end * ENTRY_SIZE)
        os.fsync(fd)
    finally:
        os.close(fd)
    return end, writes


def _write_voids(out: int, durable: int, end: int, found: bytearray) -> None:
    """Write a void entry at every number from ``durable`` to ``end`` that no
    write was found for, runs of them at once."""
    number = durable
    while number < end:
        bit = number - durable
        if found[bit // 8] >> (bit % 8) & 1:
            number += 1
            continue
        run = 1
        while run < _VOIDS and number + run < end:
            bit = number + run - durable
            if found[bit // 8] >> (bit % 8) & 1:
                break
            run += 1
        os.pwrite(out, VOID_ENTRY * run, number * ENTRY_SIZE)
        number += run


def _log_directories(root: str) -> Iterator[tuple[str, str]]:
    """(directory, stream id) of every log in the store."""
    streams = os.path.join(root, "streams")
    for first in sorted(_listing(streams)):
        parent = os.path.join(streams, first)
        for name in sorted(_listing(parent)):
            directory = os.path.join(parent, name)
            try:
                with open(os.path.join(directory, "id"), "rb") as handle:
                    stream_id = handle.read().decode("utf-8", errors="replace")
            except OSError:
                continue
            plain = os.path.join(directory, "log")
            if os.path.isdir(plain):
                yield plain, stream_id
            replicas = os.path.join(directory, "replicas")
            for replica in sorted(_listing(replicas)):
                yield os.path.join(replicas, replica), stream_id


def _listing(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _segment_writes(
    log: SegmentLog, segment: int, durable: int, names: tuple[bytes, bytes | None]
) -> Generator[tuple[int, Write], None, int | None]:
    """Yield the writes of one segment numbered ``durable`` or more (the
    frames of one write, consecutive, merged into one), a window at a time;
    return the number its first batch carries (None: none, it predates the
    feed; ``_NO_BATCH``: it holds no batch). Damage ends the segment there
    (logged)."""
    stream, replica = names
    first: int | None = _NO_BATCH
    current: list[int] | None = None  # number, first sequence, events
    position = Position(segment, SEGMENT_HEADER_SIZE)
    try:
        while position.segment == segment:
            step = read_step(log, position)
            for batch in step.batches:
                number = batch.feed_entry
                if first == _NO_BATCH:
                    first = number
                if number is None or number < durable:
                    continue
                if current is not None and current[0] == number:
                    current[2] += len(batch.items)
                    continue
                if current is not None:
                    yield current[0], (stream, replica, current[1], current[2])
                current = [number, batch.first_sequence, len(batch.items)]
            if step.at_end:
                break
            position = step.position
    except CorruptJournalError as error:
        logger.error(
            "restoring the feed index: the entries of the batches past the damage in %s "
            "are left void: %s",
            log.path(segment),
            error,
        )
    if current is not None:
        yield current[0], (stream, replica, current[1], current[2])
    return first


def numbered_writes(root: str, durable: int) -> Iterator[tuple[int, Write]]:
    """(entry number, write) of every write numbered ``durable`` or more,
    found in the frames of the store's logs, a log at a time. Blocking."""
    for directory, stream_id in _log_directories(root):
        # (a reader settles a dead writer's frames: it must not roll the segment too)
        log = SegmentLog(directory, stream_id=stream_id, durability="fsync", segment_bytes=_NEVER)
        try:
            for segment in reversed(log.segments()):
                first = yield from _segment_writes(log, segment, durable, log_digests(directory))
                if first == _NO_BATCH:
                    continue  # empty (rolled, not written yet) or damaged: look further back
                if first is None or first < durable:
                    break  # earlier segments hold earlier numbers (or none)
        finally:
            log.close()
