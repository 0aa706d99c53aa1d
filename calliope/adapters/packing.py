"""msgpack, the byte layout of plain data in the file (and PostgreSQL) stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from calliope.errors import EventEncodingError

__all__ = ["is_small", "pack_data", "pack_items"]


def pack_data(data: object) -> bytes:
    """The plain data of one event or state as msgpack bytes."""
    try:
        packed: bytes = msgpack.packb(data, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise EventEncodingError(
            f"cannot store {type(data).__name__} data as msgpack: {error}; register a cattrs "
            f"unstructure hook on app.codec.converter for the offending type"
        ) from error
    return packed


_SMALL_NODES = 64
_SMALL_BYTES = 256 * 1024


def is_small(data: object) -> bool:
    """Whether ``data`` (plain data) surely packs quickly: at most a few
    dozen values and a few hundred KiB. Looks at no more than that, so it
    is O(1); anything it cannot vouch for is packed in a worker thread, off
    the event loop."""
    stack = [data]
    nodes = 0
    size = 0
    while stack:
        value = stack.pop()
        nodes += 1
        if nodes > _SMALL_NODES:
            return False
        if isinstance(value, str | bytes | bytearray | memoryview):
            size += len(value)
            if size > _SMALL_BYTES:
                return False
        elif isinstance(value, list | tuple):
            if len(value) > _SMALL_NODES:
                return False
            stack.extend(value)
        elif isinstance(value, dict):
            if len(value) > _SMALL_NODES:
                return False
            stack.extend(value.keys())
            stack.extend(value.values())
    return True


def pack_items(items: Sequence[tuple[str, int, Any]]) -> list[bytes]:
    """Each ``(type_name, schema_version, data)`` as msgpack bytes."""
    return [pack_data(item) for item in items]
