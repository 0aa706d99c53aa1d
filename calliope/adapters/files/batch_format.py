"""The payload of a frame: one batch of events, or the seal of a segment.

A batch is the msgpack array ``[first_sequence, writer, version_of_first,
timestamp_us, items, feed_entry]`` with ``items`` an array of ``[type_name,
schema_version, data]`` and ``feed_entry`` the batch's number in the
store's feed (feed_index.py); batches written before the feed existed have
no ``feed_entry`` (a five-element array). The items arrive already packed (by the event
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
from calliope.errors import CorruptJournalError

__all__ = [
    "MAX_TIMESTAMP_US",
    "MIN_TIMESTAMP_US",
    "SEAL",
    "batch_frame",
    "batch_frame_parts",
    "decode_batch",
]

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
    feed_entry: int | None = None,
) -> bytes:
    """The frame of one batch; ``items`` are the packed ``[type, schema, data]``."""
    return b"".join(
        batch_frame_parts(first_sequence, writer, version, timestamp_us, items, feed_entry)
    )


def batch_frame_parts(
    first_sequence: int,
    writer: str,
    version: dict[str, int],
    timestamp_us: int,
    items: Sequence[bytes | Sequence[bytes]],
    feed_entry: int | None = None,
) -> list[bytes]:
    """:func:`batch_frame` as parts that concatenate to it. An item may be a
    sequence of chunks (a large event packed by ``pack_chunks``): its chunks
    are parts of their own, never copied into one buffer."""
    head: bytes = msgpack.packb([first_sequence, writer, version, timestamp_us])
    # The four-element array header becomes a five- or six-element one;
    # items follow, then the feed entry.
    kind = b"\x95" if feed_entry is None else b"\x96"
    parts = [kind + head[1:] + _array_header(len(items))]
    for item in items:
        if isinstance(item, bytes):
            parts.append(item)
        else:
            parts.extend(item)
    if feed_entry is not None:
        parts.append(msgpack.packb(feed_entry))
    return [frame_header(parts), *parts]


def decode_batch(
    payload: bytes | memoryview, *, path: str = "", offset: int = -1
) -> RecordBatch | None:
    """A frame payload back into a batch; None for a seal. A large payload
    is decoded a window at a time (:func:`unpack_data`), so a worker thread
    doing it never holds the GIL for long. O(len(payload)).

    Raises CorruptJournalError (naming ``path`` and ``offset``, the frame's
    place, when the caller gives them) if the payload is not a batch of the
    shape above: whatever its bytes, nothing else comes out. msgpack's
    length limits apply, so a damaged length never allocates more than the
    payload's size.
    """
    try:
        if len(payload) > LARGE:
            fields = unpack_data(payload)
        else:
            fields = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise _not_a_batch(path, offset, f"it is not msgpack ({error})") from error
    if fields is None:
        return None
    problem = _shape_problem(fields)
    if problem is not None:
        raise _not_a_batch(path, offset, problem)
    return RecordBatch(*fields)


MIN_TIMESTAMP_US = -62135596800000000
"""0001-01-01T00:00:00Z: the first time a stored timestamp can hold (datetime's)."""
MAX_TIMESTAMP_US = 253402300799999999
"""9999-12-31T23:59:59.999999Z: the last time a stored timestamp can hold."""


def _is_int(value: object) -> bool:
    return type(value) is int


def _shape_problem(fields: object) -> str | None:
    """What is wrong with decoded ``fields`` as a batch, or None. O(items)."""
    if type(fields) is not list or len(fields) not in (5, 6):
        return "it is not a five- or six-element array"
    first, writer, version, timestamp_us, items = fields[:5]
    if len(fields) == 6 and (not _is_int(fields[5]) or fields[5] < 0):
        return f"its feed entry {fields[5]!r} is not a non-negative int"
    if not _is_int(first) or first < 1:
        return f"its first sequence {first!r} is not an int of at least 1"
    if type(writer) is not str or not writer:
        return f"its writer {writer!r} is not a non-empty string"
    if type(version) is not dict or not all(
        type(replica) is str and replica and _is_int(count) and count >= 0
        for replica, count in version.items()
    ):
        return "its version is not a map of replica ids to non-negative ints"
    if not _is_int(timestamp_us) or not MIN_TIMESTAMP_US <= timestamp_us <= MAX_TIMESTAMP_US:
        return f"its timestamp {timestamp_us!r} is not a time in microseconds"
    if type(items) is not list or not items:
        return "its events are not a non-empty array"
    for item in items:
        if type(item) is not list or len(item) != 3 or type(item[0]) is not str:
            return "an event is not a [type name, schema version, data] array"
        if not _is_int(item[1]):
            return f"an event's schema version {item[1]!r} is not an int"
    return None


def _not_a_batch(path: str, offset: int, problem: str) -> CorruptJournalError:
    if not path:
        where, what = "a journal frame", "the file"
    elif offset < 0:  # a row of a database, named by ``path``
        where, what = path, "the table"
    else:
        where, what = f"journal file {path} at byte offset {offset}", "the file"
    return CorruptJournalError(
        f"{where} has an intact checksum but does not hold a batch: {problem}. It was not "
        f"written by this version of Calliope (a newer one, or other software); restore "
        f"{what} from a backup or a replica, or open it with the Calliope that wrote it",
        path=path,
        offset=offset,
    )
