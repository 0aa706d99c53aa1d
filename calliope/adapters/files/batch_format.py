"""The payload of a frame: one batch of events, or the seal of a segment.

A batch is the msgpack array ``[first_sequence, writer, version_of_first,
timestamp_us, items]`` with ``items`` an array of ``[type_name,
schema_version, data]``. The items arrive already packed (by the event
loop, before the writer's lock is taken), so a frame is assembled from bytes
without packing the events again. A frame whose payload is msgpack ``nil``
seals its segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgpack

from calliope.adapters.files.framing import encode_frame, frame_header
from calliope.adapters.packing import LARGE, unpack_data
from calliope.core.replication import RecordBatch

__all__ = ["SEAL", "batch_frame", "batch_frame_parts", "decode_batch"]

SEAL = encode_frame(msgpack.packb(None))
"""The frame that ends a segment: the log continues in the next one."""


def _array_header(length: int) -> bytes:
    if length < 16:
        return bytes([0x90 | length])
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def batch_frame(
    first_sequence: int,
    writer: str,
    version: dict[str, int],
    timestamp_us: int,
    items: Sequence[bytes],
) -> bytes:
    """The frame of one batch; ``items`` are the packed ``[type, schema, data]``."""
    return b"".join(batch_frame_parts(first_sequence, writer, version, timestamp_us, items))


def batch_frame_parts(
    first_sequence: int,
    writer: str,
    version: dict[str, int],
    timestamp_us: int,
    items: Sequence[bytes | Sequence[bytes]],
) -> list[bytes]:
    """:func:`batch_frame` as parts that concatenate to it. An item may be a
    sequence of chunks (a large event packed by ``pack_chunks``): its chunks
    are parts of their own, never copied into one buffer."""
    head: bytes = msgpack.packb([first_sequence, writer, version, timestamp_us])
    # The four-element array header becomes a five-element one; items follow.
    parts = [b"\x95" + head[1:] + _array_header(len(items))]
    for item in items:
        if isinstance(item, bytes):
            parts.append(item)
        else:
            parts.extend(item)
    return [frame_header(parts), *parts]


def decode_batch(payload: bytes | memoryview) -> RecordBatch | None:
    """A frame payload back into a batch; None for a seal. A large payload
    is decoded a window at a time (:func:`unpack_data`), so a worker thread
    doing it never holds the GIL for long."""
    if len(payload) > LARGE:
        fields = unpack_data(payload)
    else:
        fields = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
    if fields is None:
        return None
    return RecordBatch(*fields)
