"""Frames: how records are laid out in a segment file (docs/file-format.md).

A segment starts with a 16-byte header (``SEGMENT_MAGIC``, format version).
Then frames, each::

    magic   1 byte   0xC5
    flags   1 byte   bit 0 = COMMIT: last frame of an atomic batch
    length  4 bytes  little-endian length of the payload
    crc     4 bytes  little-endian CRC-32 of flags, length and payload
    payload length bytes (msgpack)

A batch (one ``persist`` or ``persist_all``) is a run of frames whose last
one carries COMMIT; readers never yield a frame until its batch's COMMIT
frame is complete, so a batch is seen whole or not at all.

Parsing distinguishes an *incomplete* tail (a frame still being written, or
torn by a crash: nothing valid follows it) from *damage* (a bad frame with
valid frames after it). Only the writer, under the log's lock, may cut an
incomplete tail; damage is always an error.
"""

from __future__ import annotations

import enum
import struct
import zlib
from typing import NamedTuple

__all__ = [
    "COMMIT",
    "FRAME_HEADER",
    "MAX_PAYLOAD",
    "SEGMENT_HEADER",
    "SEGMENT_HEADER_SIZE",
    "Parsed",
    "Stop",
    "encode_frame",
    "find_valid_frame",
    "parse_frames",
]

SEGMENT_MAGIC = b"CALLIOPE-SEG"
SEGMENT_FORMAT = 1
SEGMENT_HEADER = SEGMENT_MAGIC + struct.pack("<I", SEGMENT_FORMAT)
SEGMENT_HEADER_SIZE = len(SEGMENT_HEADER)

FRAME_MAGIC = 0xC5
COMMIT = 0x01
_HEADER = struct.Struct("<BBII")
FRAME_HEADER = _HEADER.size
MAX_PAYLOAD = 256 * 1024 * 1024
_FLAGS_AND_LENGTH = struct.Struct("<BI")


def encode_frame(payload: bytes, *, commit: bool) -> bytes:
    """One frame holding ``payload``; ``commit`` marks the end of a batch."""
    flags = COMMIT if commit else 0
    crc = zlib.crc32(payload, zlib.crc32(_FLAGS_AND_LENGTH.pack(flags, len(payload))))
    return _HEADER.pack(FRAME_MAGIC, flags, len(payload), crc) + payload


class Stop(enum.Enum):
    """Why parsing stopped."""

    END = "end"  # the data ended exactly after a committed frame
    INCOMPLETE = "incomplete"  # a partial frame or an uncommitted batch at the end
    BAD = "bad"  # a frame with a bad magic, length or checksum


class Parsed(NamedTuple):
    """The committed payloads found, where they end, and why parsing stopped.

    ``committed_end`` is the offset just past the last COMMIT frame (where a
    torn tail is cut); ``stop_offset`` is where parsing stopped: the end of
    the data, or the start of the incomplete or bad frame (named in errors).
    """

    payloads: list[bytes]
    committed_end: int
    stop: Stop
    stop_offset: int


def parse_frames(data: bytes | memoryview, start: int = 0) -> Parsed:
    """Parse ``data[start:]`` into committed payloads (pure; no I/O)."""
    view = memoryview(data)
    size = len(view)
    payloads: list[bytes] = []
    pending: list[bytes] = []
    position = start
    committed = start
    unpack = _HEADER.unpack_from
    crc32 = zlib.crc32
    while True:
        if position == size:
            stop = Stop.END if not pending else Stop.INCOMPLETE
            break
        if size - position < FRAME_HEADER:
            stop = Stop.INCOMPLETE
            break
        magic, flags, length, crc = unpack(view, position)
        if magic != FRAME_MAGIC or flags & ~COMMIT or length > MAX_PAYLOAD:
            stop = Stop.BAD
            break
        end = position + FRAME_HEADER + length
        if end > size:
            stop = Stop.INCOMPLETE
            break
        body = view[position + FRAME_HEADER : end]
        if crc32(body, crc32(view[position + 1 : position + 6])) != crc:
            stop = Stop.BAD
            break
        pending.append(bytes(body))
        position = end
        if flags & COMMIT:
            payloads.extend(pending)
            pending.clear()
            committed = position
    return Parsed(payloads, committed, stop, position)


def find_valid_frame(data: bytes | memoryview, start: int) -> int | None:
    """The offset of the first complete, checksummed frame at or after
    ``start``, or None. Used to tell damage (valid data follows) from a torn
    tail (nothing valid follows)."""
    view = memoryview(data)
    raw = bytes(view)
    position = start
    while True:
        position = raw.find(bytes([FRAME_MAGIC]), position)
        if position < 0 or len(raw) - position < FRAME_HEADER:
            return None
        _, flags, length, crc = _HEADER.unpack_from(raw, position)
        end = position + FRAME_HEADER + length
        if not flags & ~COMMIT and end <= len(raw):
            body = raw[position + FRAME_HEADER : end]
            if zlib.crc32(body, zlib.crc32(raw[position + 1 : position + 6])) == crc:
                return position
        position += 1
