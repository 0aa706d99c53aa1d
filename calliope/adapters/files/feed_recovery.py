"""Restoring the feed index from the logs' frames: after a reboot, or
whole when it was lost or moved aside.

Every frame of a write carries the number of the write's feed entry
(feed_index.py), and a log's numbers grow with its sequences. So the writes
numbered ``durable`` or more are found at the ends of the logs: per log,
segments are read from the last one back to the first that starts below
``durable``. O(logs + bytes written since the entry ``durable`` was taken);
from 0 (the whole index), O(size of the logs).

A damaged log does not stop a restore: the batches it holds before the
damage are found, the damage is logged at error level (file and offset),
and the entries of what lies past it are left void (feed_index.py): those
events are not in any reader's log either until the log is restored or
repaired, and a repaired log's new writes take new entries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from calliope.adapters.files.feed_index import log_digests
from calliope.adapters.files.framing import SEGMENT_HEADER_SIZE
from calliope.adapters.files.reader import read_step
from calliope.adapters.files.segment_files import Position
from calliope.adapters.files.segment_log import SegmentLog
from calliope.core.replication import RecordBatch
from calliope.errors import CorruptJournalError

__all__ = ["numbered_writes"]

logger = logging.getLogger("calliope.files")

Write = tuple[bytes, bytes | None, int, int]  # stream digest, replica prefix, first, count
_NEVER = 1 << 62  # a segment size no segment reaches


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


def _segment_batches(log: SegmentLog, segment: int) -> list[RecordBatch]:
    """Every committed batch of one segment: up to its damage, if it is
    damaged (logged)."""
    batches: list[RecordBatch] = []
    position = Position(segment, SEGMENT_HEADER_SIZE)
    try:
        while position.segment == segment:
            step = read_step(log, position)
            batches.extend(step.batches)
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
    return batches


def numbered_writes(root: str, durable: int) -> Iterator[tuple[int, Write]]:
    """(entry number, write) of every write numbered ``durable`` or more,
    found in the frames of the store's logs. Blocking."""
    for directory, stream_id in _log_directories(root):
        stream, replica = log_digests(directory)
        # (a reader settles a dead writer's frames: it must not roll the segment too)
        log = SegmentLog(directory, stream_id=stream_id, durability="fsync", segment_bytes=_NEVER)
        try:
            writes: dict[int, list[int]] = {}
            for segment in reversed(log.segments()):
                batches = _segment_batches(log, segment)
                for batch in batches:
                    number = batch.feed_entry
                    if number is None or number < durable:
                        continue
                    found = writes.get(number)
                    if found is None:
                        writes[number] = [batch.first_sequence, len(batch.items)]
                    else:
                        found[1] += len(batch.items)
                if not batches:
                    continue  # empty (rolled, not written yet) or damaged: look further back
                first = batches[0].feed_entry
                if first is None or first < durable:
                    break  # earlier segments hold earlier numbers (or none)
            for number, (first_sequence, count) in writes.items():
                yield number, (stream, replica, first_sequence, count)
        finally:
            log.close()
