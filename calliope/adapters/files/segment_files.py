"""The files of one segment log: where they are and what a segment holds.

A log is a directory of segments named by the first sequence they hold
(``00000000000000000001.seg``), each with a sparse index beside it
(``.idx``, see segment_index.py) and one ``lock`` file for writers (see
segment_writer.py). A segment starts with ``SEGMENT_HEADER``; then come
frames, each holding one atomic batch: the msgpack array
``[first_sequence, writer, version, timestamp_us, items]`` with ``items``
an array of ``[type_name, schema_version, data]``. A frame whose payload is
msgpack ``nil`` *seals* its segment: the log continues in the next segment,
and nothing follows the seal.

Contract: naming and listing never touch a segment's content;
``create_segment`` is the only function here that writes, through the
log's :class:`~calliope.adapters.files.disk.Disk`.
"""

from __future__ import annotations

import errno
import os
from typing import NamedTuple

from calliope.adapters.files.disk import OS_DISK, Disk, sync
from calliope.adapters.files.framing import SEGMENT_HEADER, SEGMENT_HEADER_SIZE
from calliope.adapters.files.fsutil import fsync_directory, private_makedirs

__all__ = ["Position", "SegmentFiles", "create_segment"]


class Position(NamedTuple):
    """Where a reader is: a segment (by first sequence) and a byte offset."""

    segment: int
    offset: int


class SegmentFiles(NamedTuple):
    """The directory of one log, the stream it holds (for messages), and
    the OS calls that write to it."""

    directory: str
    stream_id: str
    disk: Disk = OS_DISK
    synced: bool = True  # its writers fsync (durability="fsync")

    def path(self, segment: int) -> str:
        return os.path.join(self.directory, f"{segment:020d}.seg")

    def index_path(self, segment: int) -> str:
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


def create_segment(files: SegmentFiles, first: int) -> int:
    """Create (or reset a headerless) segment; return it open for writing.
    A failed sync of the file or of the directory raises
    :class:`~calliope.adapters.files.disk.SyncFailed`, other failures
    OSError."""
    disk = files.disk
    private_makedirs(files.directory)
    fd = os.open(files.path(first), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < SEGMENT_HEADER_SIZE:
            disk.ftruncate(fd, 0)
            if disk.pwrite(fd, SEGMENT_HEADER, 0) != SEGMENT_HEADER_SIZE:
                raise OSError(errno.ENOSPC, f"short write of the header of {files.path(first)}")
            sync(disk.fsync, fd)
            fsync_directory(files.directory, disk)
    except BaseException:
        os.close(fd)
        raise
    return fd
