"""msgpack, the byte layout of plain data in the file (and PostgreSQL) stores."""

from __future__ import annotations

import msgpack

from calliope.errors import EventEncodingError

__all__ = ["pack_data"]


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
