"""Frames: how batches are laid out in a segment file (docs/file-format.md).

A segment starts with a 16-byte header (``CALLIOPE-SEG`` and the format
version, u32 little-endian). Then frames, each::

    magic   1 byte   0xC5
    flags   1 byte   0 (reserved)
    length  4 bytes  little-endian length of the payload
    crc     4 bytes  little-endian CRC-32 of flags, length and payload
    payload length bytes

One frame holds one atomic append (a ``persist`` or a whole
``persist_all``), so a batch is on disk whole or not at all: there is no
frame that holds part of one.

Parsing tells an *incomplete* tail (a frame still being written, or torn
by a crash) from a *bad* frame (wrong magic, flags, or checksum). Whether a
bad frame is damage or a torn tail depends on what follows it
(:func:`find_valid_frame`); only the writer, under the log's lock, may cut
a torn tail, and damage is always an error.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Sequence
from typing import NamedTuple

from calliope.errors import InvalidArgumentError

__all__ = [
    "FRAME_HEADER",
    "payload_at",
    "MAX_PAYLOAD",
    "SEGMENT_HEADER",
    "SEGMENT_HEADER_SIZE",
    "Parsed",
    "Stop",
    "encode_frame",
    "find_valid_frame",
    "frame_header",
    "frame_length",
    "intact_frame_at",
    "parse_frames",
]

SEGMENT_MAGIC = b"CALLIOPE-SEG"
SEGMENT_FORMAT = 1
SEGMENT_HEADER = SEGMENT_MAGIC + struct.pack("<I", SEGMENT_FORMAT)
SEGMENT_HEADER_SIZE = len(SEGMENT_HEADER)

FRAME_MAGIC = 0xC5
_HEADER = struct.Struct("<BBII")
FRAME_HEADER = _HEADER.size
MAX_PAYLOAD = 256 * 1024 * 1024
_FLAGS_AND_LENGTH = struct.Struct("<BI")


def encode_frame(payload: bytes) -> bytes:
    """One frame holding ``payload``."""
    crc = zlib.crc32(payload, zlib.crc32(_FLAGS_AND_LENGTH.pack(0, len(payload))))
    return _HEADER.pack(FRAME_MAGIC, 0, len(payload), crc) + payload


def frame_header(parts: Sequence[bytes]) -> bytes:
    """The header of a frame whose payload is ``parts`` joined (so a large
    payload need not be copied into one buffer; ``zlib.crc32`` releases the
    GIL on large parts)."""
    length = sum(map(len, parts))
    crc = zlib.crc32(_FLAGS_AND_LENGTH.pack(0, length))
    for part in parts:
        crc = zlib.crc32(part, crc)
    return _HEADER.pack(FRAME_MAGIC, 0, length, crc)


def frame_length(header: bytes) -> int | None:
    """The payload length a frame header announces, or None if the header
    itself is not plausible (bad magic, flags or length)."""
    if len(header) < FRAME_HEADER:
        return None
    magic, flags, length, _ = _HEADER.unpack_from(header)
    if magic != FRAME_MAGIC or flags or length > MAX_PAYLOAD:
        return None
    return int(length)


_COPY_AT_MOST = 1024 * 1024  # a larger payload is handed out as a view (no GIL-held copy)


class Stop(enum.Enum):
    """Why parsing stopped."""

    END = "end"  # the data ended exactly after a frame
    INCOMPLETE = "incomplete"  # a partial frame at the end of the data
    BAD = "bad"  # a frame with a bad magic, flags, length or checksum


class Parsed(NamedTuple):
    """The payloads found, where they end, and why parsing stopped there.

    ``end`` is the offset just past the last intact frame; when ``stop``
    is INCOMPLETE or BAD the unusable frame starts at ``end``.
    """

    payloads: list[bytes | memoryview]  # large payloads are views, not copies
    end: int
    stop: Stop


def _check_position(position: int) -> None:
    if position < 0:
        raise InvalidArgumentError(
            f"a frame position is a byte offset from the start of the data, got {position}; "
            f"pass an offset of 0 or more"
        )


def parse_frames(data: bytes | memoryview, start: int = 0) -> Parsed:
    """Parse ``data[start:]`` into frame payloads (pure; no I/O). Any bytes
    are accepted (a ``start`` past the end gives an INCOMPLETE stop);
    a negative ``start`` is InvalidArgumentError. O(len(data))."""
    _check_position(start)
    view = memoryview(data)
    size = len(view)
    payloads: list[bytes | memoryview] = []
    position = start
    unpack = _HEADER.unpack_from
    crc32 = zlib.crc32
    while True:
        if position == size:
            return Parsed(payloads, position, Stop.END)
        if size - position < FRAME_HEADER:
            return Parsed(payloads, position, Stop.INCOMPLETE)
        magic, flags, length, crc = unpack(view, position)
        if magic != FRAME_MAGIC or flags or length > MAX_PAYLOAD:
            return Parsed(payloads, position, Stop.BAD)
        end = position + FRAME_HEADER + length
        if end > size:
            return Parsed(payloads, position, Stop.INCOMPLETE)
        body = view[position + FRAME_HEADER : end]
        if crc32(body, crc32(view[position + 1 : position + 6])) != crc:
            return Parsed(payloads, position, Stop.BAD)
        payloads.append(body if length > _COPY_AT_MOST else bytes(body))
        position = end


def payload_at(data: bytes, position: int) -> bytes | Stop:
    """The payload of the intact frame at ``position`` of ``data``; else
    ``Stop.INCOMPLETE`` (``data`` ends before the frame does) or ``Stop.BAD``.
    For a reader going one frame at a time through bytes it holds (``data``
    is bytes, ``position`` >= 0: not checked). O(frame)."""
    if len(data) - position < FRAME_HEADER:
        return Stop.INCOMPLETE
    magic, flags, length, crc = _HEADER.unpack_from(data, position)
    if magic != FRAME_MAGIC or flags or length > MAX_PAYLOAD:
        return Stop.BAD
    start = position + FRAME_HEADER
    if start + length > len(data):
        return Stop.INCOMPLETE
    payload = data[start : start + length]
    if zlib.crc32(payload, zlib.crc32(data[position + 1 : position + 6])) != crc:
        return Stop.BAD
    return payload


def intact_frame_at(data: bytes | memoryview, position: int) -> bool:
    """Whether a whole frame with a matching checksum starts at ``position``
    (any bytes; a negative ``position`` is InvalidArgumentError). O(frame)."""
    _check_position(position)
    view = memoryview(data)
    if len(view) - position < FRAME_HEADER:
        return False
    magic, flags, length, crc = _HEADER.unpack_from(view, position)
    end = position + FRAME_HEADER + length
    if magic != FRAME_MAGIC or flags or length > MAX_PAYLOAD or end > len(view):
        return False
    body = view[position + FRAME_HEADER : end]
    return bool(zlib.crc32(body, zlib.crc32(view[position + 1 : position + 6])) == crc)


def find_valid_frame(data: bytes, start: int) -> int | None:
    """The offset of the first intact frame at or after ``start``, or None.

    Tells damage (intact data follows a bad frame) from a torn tail
    (nothing intact follows). Any bytes; a negative ``start`` is
    InvalidArgumentError. O(len(data)) per candidate frame, so
    O(len(data) squared) at worst: only for data already found damaged.
    """
    _check_position(start)
    magic = bytes([FRAME_MAGIC])
    position = start
    while True:
        position = data.find(magic, position)
        if position < 0:
            return None
        if intact_frame_at(data, position):
            return position
        position += 1
