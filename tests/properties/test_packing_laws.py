"""The large-data msgpack paths give exactly msgpack's bytes and values.

``pack_chunks`` and ``unpack_data`` take large values apart by size; here
the thresholds are tiny, so small generated data goes through every path
(chunks of their own, windows, values larger than a window).
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from calliope.adapters.packing import is_large, pack_chunks, repack_data, unpack_data
from calliope.errors import EventEncodingError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.binary(max_size=300)
)
keys = (
    st.text(max_size=40)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=40)
)
plain = st.recursive(
    scalars
    | st.builds(bytearray, st.binary(max_size=300))
    | st.builds(lambda b: memoryview(b), st.binary(max_size=300))
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=100)),
    lambda inner: (
        st.lists(inner, max_size=8)
        | st.lists(inner, max_size=8).map(tuple)
        | st.dictionaries(keys, inner, max_size=8)
    ),
    max_leaves=30,
)


def packb(data: Any) -> bytes:
    packed: bytes = msgpack.packb(data, use_bin_type=True)
    return packed


def unpackb(packed: bytes) -> Any:
    return msgpack.unpackb(packed, raw=False, strict_map_key=False)


@given(plain, st.integers(min_value=1, max_value=64))
def test_chunks_join_to_msgpack_bytes(data: Any, large: int) -> None:
    chunks = pack_chunks(data, large=large)
    assert all(type(chunk) is bytes for chunk in chunks)
    assert b"".join(chunks) == packb(data)


@given(plain, st.integers(min_value=64, max_value=400))
def test_windowed_unpacking_gives_msgpack_values(data: Any, window: int) -> None:
    packed = packb(data)
    assert unpack_data(packed, window=window) == unpackb(packed)
    assert unpack_data(b"xyz" + packed, 3, window=window) == unpackb(packed)


@given(plain, st.integers(min_value=64, max_value=400), st.data())
def test_truncated_or_extended_data_is_an_error(
    data: Any, window: int, draw: st.DataObject
) -> None:
    packed = packb(data)
    cut = draw.draw(st.integers(min_value=0, max_value=len(packed) - 1))
    errors = (ValueError, TypeError, msgpack.UnpackException)
    with pytest.raises(errors):
        unpack_data(packed[:cut], window=window)
    with pytest.raises(errors):
        unpack_data(packed + b"\xc0", window=window)


@given(plain)
def test_repacking_is_msgpacks_round_trip(data: Any) -> None:
    assert repack_data(data) == unpackb(packb(data))


def test_a_large_bytes_value_is_its_own_chunk_not_a_copy() -> None:
    blob = bytes(3 * 1024 * 1024)
    chunks = pack_chunks({"name": "x", "blob": blob})
    assert any(chunk is blob for chunk in chunks)
    assert unpack_data(b"".join(chunks)) == {"name": "x", "blob": blob}


def test_what_msgpack_refuses_is_an_encoding_error() -> None:
    with pytest.raises(EventEncodingError, match="msgpack"):
        pack_chunks({"blob": bytes(2 * 1024 * 1024), "bad": object()})
    with pytest.raises(EventEncodingError, match="msgpack"):
        pack_chunks(["\ud800" * (2 * 1024 * 1024)])


def test_a_map_key_msgpack_cannot_hash_is_a_type_error_as_in_msgpack() -> None:
    packed = packb({(1, 2): b"x" * 200})
    with pytest.raises(TypeError):
        unpackb(packed)
    with pytest.raises(TypeError):
        unpack_data(packed, window=64)


def test_large_means_many_values_or_many_bytes() -> None:
    assert not is_large({"a": 1, "b": [b"x" * 1000] * 10})
    assert is_large({"blob": bytes(2 * 1024 * 1024)})
    assert is_large(list(range(5000)))
    assert is_large([[1] * 600, [2] * 600])


def nested(depth: int, inner: Any) -> Any:
    for level in range(depth):
        inner = [inner, level] if level % 2 else {"k": inner}
    return inner


@pytest.mark.parametrize("depth", [3, 150, 1000])
def test_deeply_nested_large_values_round_trip(depth: int) -> None:
    data = nested(depth, b"b" * 300)
    packed = b"".join(pack_chunks(data, large=100))
    assert packed == packb(data)
    assert packb(unpack_data(packed, window=64)) == packed  # (== would recurse too deep)
