"""A log's committed extent: how far its writers have made it durable.

Every log directory has a ``lock`` file (writers ``flock`` it, see
segment_writer.py). Its first 32 bytes hold the *committed extent*: the
segment and byte offset up to which the log's frames are on disk, and the
last sequence there::

    magic          4 bytes  b"CEXT"
    segment        8 bytes  little-endian u64, the segment's first sequence
    end            8 bytes  little-endian u64, the offset just past the last
                            committed frame of that segment
    last_sequence  8 bytes  little-endian u64
    crc            4 bytes  little-endian CRC-32 of the 28 bytes before it

Contract:

- A writer records the extent, under the lock, only *after* the frames up to
  it were written and fsynced (``durability="fsync"``) and before it
  acknowledges them. So everything up to the extent was acknowledged or
  could have been, and nothing past it was: readers deliver frames up to the
  extent and never past it (a frame past it may still be waiting for its
  fsync), and damage up to the extent is damage to acknowledged data,
  never a torn write.
- The record is not fsynced itself: after a power loss it may be older than
  the segments (never newer, since it is written after their fsync). An
  older extent only means less evidence; the writer that next takes the
  lock makes what lies past it durable and records it again.
- A log written by an older Calliope has an empty ``lock`` file: no extent
  (:data:`None`); readers then trust every intact frame, as before.
- A damaged record (:data:`DAMAGED`: anything but an intact one) says
  nothing. A writer then checks the frames: if they end cleanly it
  records the extent again; if the last one is unusable it cannot tell a
  torn write from damage and refuses to cut anything
  (CorruptJournalError). Readers do the same: a reader of a writable store
  settles the log first (as a writer would), a read-only one reads the
  intact frames and raises that same error at an unusable end, unless a
  writer holds the lock (its write in progress, after which it records the
  extent again).
- With ``durability="flush"`` nothing is fsynced: the extent (magic
  ``CEXF``) marks what was handed to the OS, readers deliver up to it, and
  it is no evidence after a power loss (which that setting accepts losing).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import zlib
from typing import NamedTuple

from calliope.adapters.files.disk import Disk

__all__ = [
    "DAMAGED",
    "Extent",
    "lock_path",
    "read_extent",
    "read_extent_fd",
    "read_extent_record",
    "write_extent",
    "writer_busy",
]

_MAGIC = b"CEXT"  # the frames up to it were fsynced
_FLUSHED = b"CEXF"  # written with durability="flush": handed to the OS, not fsynced
_BODY = struct.Struct("<4sQQQ")
_CRC = struct.Struct("<I")
SIZE = _BODY.size + _CRC.size
_RETRIES = 3  # a record read while it is being rewritten fails its check: look again


class Extent(NamedTuple):
    """Frames up to ``end`` of ``segment`` are committed; the last holds
    ``last_sequence``. Segments before ``segment`` are committed whole."""

    segment: int
    end: int
    last_sequence: int
    synced: bool = True  # False: written with durability="flush" (no fsync)

    def committed_end(self, segment: int) -> int | None:
        """How far the frames of ``segment`` are committed: ``end`` for the
        extent's own segment, None (all of it) for an earlier one, 0 (none
        of it) for a later one."""
        if segment < self.segment:
            return None
        return self.end if segment == self.segment else 0


def lock_path(directory: str) -> str:
    """The lock file of the log in ``directory`` (it holds the extent)."""
    return os.path.join(directory, "lock")


DAMAGED = Extent(0, 0, 0, synced=False)
"""What :func:`read_extent_fd` returns for a lock file whose record is not
intact: nothing can be told from it (no segment is numbered 0)."""


def encode_extent(extent: Extent) -> bytes:
    magic = _MAGIC if extent.synced else _FLUSHED
    body = _BODY.pack(magic, extent.segment, extent.end, extent.last_sequence)
    return body + _CRC.pack(zlib.crc32(body))


def decode_extent(record: bytes) -> Extent | None:
    """The extent in ``record``, or None if it is not a whole, intact one."""
    if len(record) < SIZE:
        return None
    body = record[: _BODY.size]
    (crc,) = _CRC.unpack_from(record, _BODY.size)
    if zlib.crc32(body) != crc:
        return None
    magic, segment, end, last_sequence = _BODY.unpack(body)
    if magic not in (_MAGIC, _FLUSHED) or segment < 1:
        return None
    return Extent(segment, end, last_sequence, synced=magic == _MAGIC)


def write_extent(disk: Disk, fd: int, extent: Extent) -> None:
    """Record ``extent`` in the open lock file ``fd`` (no fsync: see the
    module's contract). Call under the lock, after the fsync of the frames."""
    record = encode_extent(extent)
    if disk.pwrite(fd, record, 0) != len(record):
        raise OSError(errno.ENOSPC, "short write of a log's committed extent")


def read_extent_fd(fd: int) -> Extent | None:
    """The extent recorded in the open lock file ``fd``: None if the file
    is empty (a log written before extents were recorded), :data:`DAMAGED`
    if it holds something that is not an intact record."""
    record = os.pread(fd, SIZE, 0)
    for _ in range(_RETRIES):
        if not record:
            return None
        extent = decode_extent(record)
        if extent is not None:
            return extent
        record = os.pread(fd, SIZE, 0)  # perhaps caught mid-rewrite
    return decode_extent(record) or DAMAGED


def read_extent_record(directory: str) -> Extent | None:
    """The extent of the log in ``directory``, read without the lock: None
    if there is no log there or it was written before extents were
    recorded, :data:`DAMAGED` if the record is not intact."""
    try:
        fd = os.open(lock_path(directory), os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return read_extent_fd(fd)
    finally:
        os.close(fd)


def read_extent(directory: str) -> Extent | None:
    """:func:`read_extent_record`, but None for a damaged record too (for
    callers that only use an intact one as a bound or a hint)."""
    extent = read_extent_record(directory)
    return None if extent is DAMAGED else extent


def writer_busy(directory: str) -> bool:
    """Whether a writer holds the lock of the log in ``directory`` right
    now (a shared ``flock`` tried and let go at once; works on a read-only
    file system too)."""
    try:
        fd = os.open(lock_path(directory), os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)
    return False
