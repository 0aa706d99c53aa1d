"""msgpack, the byte layout of plain data in the file (and PostgreSQL) stores.

Large data (snapshots of big states) has its own path that never holds the
GIL for long, so that a worker thread packing or unpacking it does not
stall the event loop: :func:`pack_chunks` leaves large ``bytes`` values
out of msgpack's buffer (they become chunks of their own, not copied), and
:func:`unpack_data` decodes large data a window at a time, copying a large
``bin`` value piecewise and joining the pieces with the GIL released. The
bytes are exactly those of ``msgpack.packb``/``unpackb``.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Sequence
from itertools import chain, islice, repeat
from typing import Any

import msgpack

from calliope.errors import EventEncodingError

__all__ = [
    "pack_quickly",
    "LARGE",
    "is_large",
    "is_small",
    "pack_chunks",
    "pack_data",
    "INLINE_EVENTS",
    "pack_items",
    "quick_to_pack",
    "pack_large_items",
    "repack_data",
    "unpack_data",
]

LARGE = 1024 * 1024
"""Data over this many bytes (or with over ``_SMALL_ELEMENTS`` values) is
large: packed and unpacked in a worker thread, by the paths below."""

_SMALL_ELEMENTS = 1024
_PIECE = 1024 * 1024  # the most copied at once while the GIL is held
_WINDOW = 256 * 1024  # the most unpacked at once (1 MiB of small values: ~15-40 ms here)
_NO_LIMIT = 2**32 - 1
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


def _encoding_error(data: object, error: BaseException) -> EventEncodingError:
    return EventEncodingError(
        f"cannot store {type(data).__name__} data as msgpack: {error}; register a cattrs "
        f"unstructure hook on app.codec.converter for the offending type"
    )


def pack_data(data: object) -> bytes:
    """The plain data of one event or state as msgpack bytes."""
    try:
        packed: bytes = msgpack.packb(data, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise _encoding_error(data, error) from error
    return packed


_SMALL_NODES = 64
_SMALL_BYTES = 256 * 1024


_SCALARS = (int, float, bool, type(None))


def is_small(data: object) -> bool:
    """Whether ``data`` (plain data) surely packs quickly: at most a few
    dozen values and a few hundred KiB. Looks at no more than that, so it
    is O(1); anything it cannot vouch for is packed in a worker thread, off
    the event loop."""
    if type(data) is dict and len(data) <= _SMALL_NODES:  # the usual event: flat fields
        size = 0
        for value in data.values():
            kind = type(value)
            if kind is str or kind is bytes:
                size += len(value)
            elif kind not in _SCALARS:
                return _is_small_nested(data)
        return size <= _SMALL_BYTES
    return _is_small_nested(data)


def _is_small_nested(data: object) -> bool:
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


INLINE_EVENTS = 256
"""A batch with more events is packed in a worker thread, however small each."""


def quick_to_pack(datas: Sequence[object]) -> bool:
    """Whether the events with these plain datas surely pack quickly (few,
    each small): on the event loop; else a worker thread packs them. The
    one rule both adapters follow."""
    if len(datas) == 1:
        return is_small(datas[0])
    return len(datas) <= INLINE_EVENTS and all(is_small(data) for data in datas)


def pack_items(items: Sequence[tuple[str, int, Any]]) -> list[bytes]:
    """Each ``(type_name, schema_version, data)`` as msgpack bytes."""
    return [pack_data(item) for item in items]


def pack_large_items(items: Sequence[tuple[str, int, Any]]) -> list[bytes | list[bytes]]:
    """Like :func:`pack_items`, for a worker thread: a large item comes as
    the chunks that concatenate to its bytes (:func:`pack_chunks`), so its
    large values are never copied while the GIL is held."""
    packed: list[bytes | list[bytes]] = []
    for item in items:
        chunks = pack_chunks(item) if is_large(item) else [pack_data(item)]
        packed.append(chunks[0] if len(chunks) == 1 else chunks)
    return packed


def is_large(data: object) -> bool:
    """Whether packing ``data`` may hold the event loop for long: its
    strings and bytes exceed ``LARGE`` or it holds over ``_SMALL_ELEMENTS``
    values. Looks at no more than that many values, so it is cheap."""
    stack = [data]
    size = count = 0
    while stack:
        value = stack.pop()
        count += 1
        if isinstance(value, (bytes, bytearray, str)):
            size += len(value)
        elif isinstance(value, memoryview):
            size += value.nbytes
        elif isinstance(value, dict):
            if len(value) * 2 > _SMALL_ELEMENTS:
                return True
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            if len(value) > _SMALL_ELEMENTS:
                return True
            stack.extend(value)
        if size > LARGE or count > _SMALL_ELEMENTS:
            return True
    return False


def pack_chunks(data: object, *, large: int = LARGE) -> list[bytes]:
    """``pack_data(data)`` as a list of ``bytes`` that concatenate to it.

    A ``bytes`` value of ``large`` bytes or more is a chunk of its own (the
    same object, not copied); other such bytes-like values and strings are
    copied or encoded a piece at a time. The rest is packed by msgpack as
    usual, so for large data, in a worker thread, no step holds the GIL
    for long unless a part without large values is itself huge (or a large
    value lies deeper than the first ``_SCAN_BUDGET`` values looked at).
    """
    packer = msgpack.Packer(use_bin_type=True, autoreset=False)
    chunks: list[bytes] = []
    try:
        _pack_into(data, _large_paths(data, large), packer, chunks, 0)
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        raise _encoding_error(data, error) from error
    chunks.append(packer.bytes())
    return [chunk for chunk in chunks if chunk]


_SCAN_BUDGET = 16384
_SPLIT_DEPTH = 100  # (unpack_data takes apart as many levels, then lets msgpack read the rest)
_SCALARS = (int, float, bool, type(None))


def _large_paths(data: object, large: int) -> set[int]:
    """The ids of the strings and bytes-like values of ``large`` or more
    bytes among the first ``_SCAN_BUDGET`` values of ``data`` (breadth
    first), and of the lists, tuples and dicts that hold them."""
    found: set[int] = set()
    containers: list[tuple[int, int]] = []  # (id, index of its container or -1)
    queue: deque[tuple[object, int]] = deque([(data, -1)])
    budget = _SCAN_BUDGET
    while queue and budget > 0:
        value, parent = queue.popleft()
        budget -= 1
        if type(value) in _SCALARS:
            continue
        if isinstance(value, (bytes, bytearray, memoryview, str)):
            if (value.nbytes if isinstance(value, memoryview) else len(value)) < large:
                continue
            found.add(id(value))
            while parent >= 0 and containers[parent][0] not in found:
                identity, parent = containers[parent]
                found.add(identity)
        elif isinstance(value, (dict, list, tuple)) and not isinstance(value, msgpack.ExtType):
            containers.append((id(value), parent))
            children = chain.from_iterable(value.items()) if isinstance(value, dict) else value
            queue.extend(zip(islice(children, budget), repeat(len(containers) - 1)))
    return found


def _pack_into(
    value: object, split: set[int], packer: Any, chunks: list[bytes], depth: int
) -> None:
    """Pack ``value``, taking apart the values whose ids are in ``split``."""
    if id(value) not in split or depth >= _SPLIT_DEPTH:  # deeper: as packb, by msgpack
        packer.pack(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        view = memoryview(value).cast("B")  # as msgpack: a contiguous buffer, or TypeError
        _flush(packer, chunks)
        chunks.append(_length_header(view.nbytes, _BIN_HEADERS))
        if type(value) is bytes:
            chunks.append(value)
        else:
            chunks.extend(bytes(view[at : at + _PIECE]) for at in range(0, view.nbytes, _PIECE))
    elif isinstance(value, str):
        pieces = [value[at : at + _PIECE].encode("utf-8") for at in range(0, len(value), _PIECE)]
        _flush(packer, chunks)
        chunks.append(_length_header(sum(map(len, pieces)), _STR_HEADERS))
        chunks.extend(pieces)
    elif isinstance(value, dict):
        packer.pack_map_header(len(value))
        for key, item in value.items():
            _pack_into(key, split, packer, chunks, depth + 1)
            _pack_into(item, split, packer, chunks, depth + 1)
    elif isinstance(value, (list, tuple)):
        packer.pack_array_header(len(value))
        for item in value:
            _pack_into(item, split, packer, chunks, depth + 1)
    else:  # pragma: no cover - _large_paths marks only the types above
        packer.pack(value)


# (largest length, marker, layout of the length) of msgpack's bin and str headers
_BIN_HEADERS = ((0xFF, 0xC4, _U8), (0xFFFF, 0xC5, _U16), (_NO_LIMIT, 0xC6, _U32))
_STR_HEADERS = ((0xFF, 0xD9, _U8), (0xFFFF, 0xDA, _U16), (_NO_LIMIT, 0xDB, _U32))


def _length_header(length: int, headers: tuple[tuple[int, int, struct.Struct], ...]) -> bytes:
    """The smallest bin or str header for ``length`` bytes, as msgpack writes it."""
    if headers is _STR_HEADERS and length < 32:
        return bytes([0xA0 | length])
    for largest, marker, layout in headers:
        if length <= largest:
            return bytes([marker]) + layout.pack(length)
    raise ValueError(f"a value of {length} bytes is too large for msgpack")


def _flush(packer: Any, chunks: list[bytes]) -> None:
    chunks.append(packer.bytes())
    packer.reset()


def unpack_data(buffer: bytes | memoryview, start: int = 0, *, window: int = _WINDOW) -> Any:
    """The plain data packed in ``buffer[start:]``, as ``msgpack.unpackb``
    would return it (raises ``ValueError``, ``TypeError`` or a msgpack
    error if it is not one complete msgpack value).

    Up to ``window`` bytes are one ``unpackb``. Beyond, values are unpacked
    a window at a time and a large ``bin`` value is copied a piece at a
    time and joined with the GIL released: in a worker thread, no step
    holds the GIL for long (a single huge string still is decoded in one).
    """
    view = memoryview(buffer).cast("B")[start:]
    window = max(window, 64)  # a window holds any value but a str, bin, ext, array or map
    if len(view) <= window:
        return msgpack.unpackb(view, raw=False, strict_map_key=False)
    reader = _Reader(view, window)
    value = reader.read()
    if reader.position != len(view):
        raise ValueError(f"{len(view) - reader.position} bytes of extra data after msgpack data")
    return value


def repack_data(data: object) -> Any:
    """``data`` packed and unpacked again (as storage would return it), by
    the large-data paths: for a worker thread."""
    return unpack_data(b"".join(pack_chunks(data)))


# how the count of an array16/32 or map16/32, and the length of a bin, str or
# ext value, is laid out after its marker byte
_COUNTS = {0xDC: _U16, 0xDD: _U32, 0xDE: _U16, 0xDF: _U32}
_LENGTHS = {0xC4: _U8, 0xC5: _U16, 0xC6: _U32, 0xD9: _U8, 0xDA: _U16, 0xDB: _U32}
_EXT_LENGTHS = {0xC7: _U8, 0xC8: _U16, 0xC9: _U32}
_LENGTH_LIMITS = ("max_str_len", "max_bin_len", "max_array_len", "max_map_len", "max_ext_len")
_READER_DEPTH = _SPLIT_DEPTH


class _Reader:
    """Reads msgpack values from a view, through ``Unpacker`` windows of at
    most ``window`` bytes; values that do not fit one are taken apart here."""

    def __init__(self, view: memoryview, window: int) -> None:
        self._view = view
        self._window = window
        self._depth = 0  # of the arrays and maps being taken apart
        self.position = 0
        self._unpacker: Any = None
        self._base = 0  # where the current unpacker's window starts

    def _open_window(self) -> Any:
        unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=False,
            max_buffer_size=self._window,
            **dict.fromkeys(_LENGTH_LIMITS, _NO_LIMIT),
        )
        unpacker.feed(self._view[self.position : self.position + self._window])
        self._unpacker, self._base = unpacker, self.position
        return unpacker

    def read(self) -> Any:
        """The value at ``position``; moves past it."""
        unpacker = self._unpacker if self._unpacker is not None else self._open_window()
        try:
            value = unpacker.unpack()
        except msgpack.OutOfData:
            if self._base == self.position:  # larger than a window
                return self._read_large()
            unpacker = self._open_window()  # it straddled the window's end
            try:
                value = unpacker.unpack()
            except msgpack.OutOfData:
                return self._read_large()
        self.position = self._base + unpacker.tell()
        return value

    def _number(self, layout: struct.Struct) -> int:
        """The number after the marker byte at ``position``; moves past both."""
        end = self._advance(1 + layout.size)
        return int(layout.unpack_from(self._view, end - layout.size)[0])

    def _read_large(self) -> Any:
        """The value at ``position``, which does not fit a window."""
        self._unpacker = None  # the next read opens a window after this value
        start = self.position
        if start >= len(self._view):
            raise ValueError(f"msgpack data truncated at offset {start}")
        marker = self._view[start]
        if self._depth >= _READER_DEPTH and (0x80 <= marker <= 0x9F or marker in _COUNTS):
            return self._read_rest()
        if 0x80 <= marker <= 0x9F:  # fixmap, fixarray
            self._advance(1)
            count = marker & 0x0F
        elif marker in _COUNTS:  # map16/32, array16/32
            count = self._number(_COUNTS[marker])
        elif marker in _LENGTHS:  # bin, str
            length = self._number(_LENGTHS[marker])
            end = self._advance(length)
            if marker >= 0xD9:  # a string: decoded in one step
                return msgpack.unpackb(self._view[start:end], raw=False)
            return self._copy(self._view[end - length : end])
        elif marker in _EXT_LENGTHS:
            length = self._number(_EXT_LENGTHS[marker])
            end = self._advance(1 + length)  # the ext type, then its data
            return msgpack.unpackb(self._view[start:end])
        else:
            raise ValueError(f"msgpack data truncated or damaged at offset {start}")
        self._depth += 1
        if marker <= 0x8F or marker >= 0xDE:  # a map
            mapping: dict[Any, Any] = {}
            for _ in range(count):
                key = self.read()
                mapping[key] = self.read()
            value: Any = mapping
        else:
            value = [self.read() for _ in range(count)]
        self._depth -= 1
        return value

    def _read_rest(self) -> Any:
        """The value at ``position`` by one ``Unpacker`` over the rest of the
        data (copied, with the GIL held): only for values nested deeper than
        ``_READER_DEPTH`` large arrays and maps, which this reader does not
        take apart so as not to run out of Python stack."""
        rest = self._view[self.position :]
        unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=False,
            max_buffer_size=max(len(rest), 1),
            **dict.fromkeys(_LENGTH_LIMITS, _NO_LIMIT),
        )
        unpacker.feed(rest)
        value = unpacker.unpack()
        self.position += unpacker.tell()
        return value

    def _advance(self, length: int) -> int:
        """Move ``position`` past ``length`` bytes; the new position."""
        end = self.position + length
        if end > len(self._view):
            raise ValueError(f"msgpack data truncated at offset {self.position}")
        self.position = end
        return end

    @staticmethod
    def _copy(view: memoryview) -> bytes:
        """``bytes(view)``, copied a piece at a time with the GIL held and
        joined with it released (``bytes.join`` releases it for 1 MiB or more
        of ``bytes``)."""
        return b"".join(bytes(view[at : at + _PIECE]) for at in range(0, len(view), _PIECE))


def pack_quickly(events: Sequence[Any]) -> tuple[Sequence[bytes], int] | None:
    """The packed events and their size, if packing them is surely quick
    (:func:`quick_to_pack`); None when a worker thread should do it."""
    if not quick_to_pack([event.data for event in events]):
        return None
    if len(events) == 1:  # the usual persist
        event = events[0]
        packed = pack_data((event.type_name, event.schema_version, event.data))
        return (packed,), len(packed)
    items = pack_items([(e.type_name, e.schema_version, e.data) for e in events])
    return items, sum(map(len, items))
