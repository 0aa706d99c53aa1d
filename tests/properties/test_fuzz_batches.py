"""Fuzzing the batch format: ``decode_batch`` on any payload.

Arbitrary bytes, arbitrary msgpack structures (wrong arity, wrong field
types, huge ints, nested junk, ext types) and valid batches go in; a batch
with the fields of the format, None (a seal), or CorruptJournalError come
out, nothing else, and a damaged length allocates nothing near what it
announces.

Each test runs a fixed number of examples (see ``fuzz_settings`` in
tests/conftest.py); ``CALLIOPE_FUZZ_EXAMPLES=100000`` runs that many in each.
"""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import calliope
from calliope.adapters.files.batch_format import batch_frame, decode_batch
from calliope.adapters.files.framing import FRAME_HEADER
from calliope.adapters.packing import LARGE, pack_data, unpack_data
from calliope.core.replication import RecordBatch
from tests.conftest import fuzz_settings

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
)
keys = st.none() | st.integers(-9, 9) | st.text(max_size=3) | st.binary(max_size=3)
plain = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)


def packed(value: Any) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


junk = scalars | st.lists(scalars, max_size=3) | st.dictionaries(keys, scalars, max_size=2)
big = st.integers(-(2**63), 2**64 - 1)


@st.composite
def batch_like(draw: st.DrawFn) -> list[Any]:
    """Up to seven fields, each either of the right type or anything at all."""
    item = st.lists(junk, max_size=4) | st.tuples(st.text(max_size=6), big, junk).map(list)
    fields: list[Any] = [
        draw(big | junk),
        draw(st.text(max_size=6) | junk),
        draw(st.dictionaries(st.text(max_size=4), big, max_size=3) | junk),
        draw(big | junk),
        draw(st.lists(item, max_size=3) | plain),
    ]
    arity = draw(st.integers(0, 7))
    return [*fields, None, None][:arity]


ext_values = (
    st.builds(
        lambda code, data: b"\xc7" + bytes([len(data)]) + struct.pack("b", code) + data,
        st.integers(-128, 127),
        st.binary(max_size=16),
    )
    | st.builds(  # fixext 1, 2, 4, 8, 16: code -1 is msgpack's timestamp
        lambda size, code, data: bytes([0xD4 + size]) + struct.pack("b", code) + data[: 1 << size],
        st.integers(0, 4),
        st.sampled_from([-1, -1, 0, 5, -128, 127]),
        st.binary(min_size=16, max_size=16),
    )
)


def check(payload: bytes | memoryview) -> None:
    try:
        batch = decode_batch(payload)
    except calliope.CorruptJournalError as error:
        assert "does not hold a batch" in str(error)
        return
    if batch is None:
        assert bytes(payload) == b"\xc0"
        return
    assert isinstance(batch, RecordBatch)
    assert type(batch.first_sequence) is int and batch.first_sequence >= 1
    assert type(batch.writer) is str and batch.writer
    assert all(type(k) is str and type(v) is int for k, v in batch.version.items())
    assert type(batch.timestamp_us) is int
    assert batch.items and all(
        len(i) == 3 and type(i[0]) is str and type(i[1]) is int for i in batch.items
    )
    batch.last_version  # noqa: B018 - usable


@fuzz_settings(500)
@given(st.binary(max_size=200))
@example(b"\x00\x00")  # two values, not one
@example(b"\x01")  # an int: RecordBatch(*1) was a TypeError
@example(b"\x80")  # an empty map: RecordBatch(*{}) was a TypeError
@example(b"\xdd\xff\xff\xff\xff")  # an array of 2**32 - 1
@example(b"\xdf\xff\xff\xff\xff")  # a map of 2**32 - 1
@example(b"\xc6\xff\xff\xff\xff")  # a bin of 4 GiB
@example(b"\x91" * 5000)  # nested past msgpack's stack
@example(b"\xa1\xff")  # invalid UTF-8
@example(b"\x81\x90\x00")  # an array as a map key: unhashable
@example(b"\xd4\xff\x00")  # a timestamp ext of the wrong size
def test_any_bytes_decode_or_raise_corrupt_journal(payload: bytes) -> None:
    check(payload)


@fuzz_settings(200)
@given(batch_like())
@example([1, "w", {"w": 1}, 0, [["T", 1, {}]]])
@example([1, "w", {"w": 1}, 0, []])  # no events
@example([0, "w", {"w": 1}, 0, [["T", 1, {}]]])  # sequence 0
@example([1, "w", {"w": 1}, 2**64 - 1, [["T", 1, {}]]])  # past datetime's range
@example([1, "w", {"w": 1}, 0, [["T", "1", {}]]])  # a str schema version
@example([1, "w", {"w": True}, 0, [["T", 1, {}]]])  # a bool counter
@example({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})  # five keys
@example([1, "w", {"w": 1}, 0, "abc"])  # events as a str
def test_any_structure_decodes_or_raises_corrupt_journal(fields: list[Any]) -> None:
    check(packed(fields))


@fuzz_settings(200)
@given(st.lists(ext_values | plain.map(packed), max_size=6), st.booleans())
@example([packed(1), packed("w"), packed({}), b"\xd6\xff\x00\x00\x00\x01", packed([])], False)
def test_ext_types_and_memoryviews(fields: list[bytes], as_view: bool) -> None:
    payload = bytes([0x90 | len(fields)]) + b"".join(fields)
    check(memoryview(payload) if as_view else payload)


@fuzz_settings(100)
@given(
    st.integers(1, 2**63),
    st.text(min_size=1, max_size=6),
    st.dictionaries(st.text(min_size=1, max_size=4), st.integers(0, 2**63)),
    st.integers(-(2**50), 2**50),
    st.lists(st.tuples(st.text(max_size=6), st.integers(1, 9), plain), min_size=1, max_size=4),
)
@example(1, "0", {}, 0, [("", 1, float("nan"))])
def test_a_written_batch_reads_back(
    first: int,
    writer: str,
    version: dict[str, int],
    timestamp_us: int,
    items: list[tuple[str, int, Any]],
) -> None:
    frame = batch_frame(first, writer, version, timestamp_us, [pack_data(i) for i in items])
    batch = decode_batch(frame[FRAME_HEADER:])
    assert batch is not None
    expected = RecordBatch(first, writer, version, timestamp_us, [list(i) for i in items])
    assert packed(batch) == packed(expected)  # (NaN != NaN, so compared as bytes)


def test_a_large_damaged_payload_raises_corrupt_journal() -> None:
    """Over LARGE bytes the payload is decoded a window at a time."""
    good = packed([1, "w", {"w": 1}, 0, [["T", 1, b"x" * LARGE]]])
    for payload in (good[:-1], good + b"\x00", good[:2] + b"\xc1" + good[3:]):
        with pytest.raises(calliope.CorruptJournalError):
            decode_batch(payload)
    nested = b"\x95" + b"\x91" * 5000 + b"\x00" * LARGE
    with pytest.raises(calliope.CorruptJournalError):
        decode_batch(nested)


def test_the_error_names_the_frame_when_told_where_it_is() -> None:
    with pytest.raises(calliope.CorruptJournalError) as caught:
        decode_batch(b"\x01", path="/data/x.seg", offset=16)
    assert (caught.value.path, caught.value.offset) == ("/data/x.seg", 16)
    assert "/data/x.seg" in str(caught.value) and "16" in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xdd\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff",
        b"\xc6\xff\xff\xff\xff",
        b"\xdb\xff\xff\xff\xff",
    ],
)
def test_a_huge_length_allocates_nothing_like_it(payload: bytes) -> None:
    one_large_value = b"\xc6" + struct.pack(">I", LARGE) + b"\x00" * LARGE
    for data in (payload + b"\x00" * 64, payload + one_large_value):
        tracemalloc.start()
        try:
            with pytest.raises(calliope.CorruptJournalError):
                decode_batch(data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 3 * len(data) + 64 * 1024  # a copy or two of the input at most


@fuzz_settings(400)
@given(st.binary(max_size=300) | st.lists(plain, max_size=4).map(packed), st.data())
@example(b"\x92" + b"\xc4\x80" + b"x" * 128 + b"\x01", None)
def test_the_windowed_decoder_fails_as_decode_batch_expects(
    payload: bytes, data: st.DataObject | None
) -> None:
    """A payload over LARGE is decoded by ``unpack_data`` a window at a time;
    with a window of 64 bytes, small payloads take that path: the same value
    as msgpack, or an error decode_batch turns into CorruptJournalError."""
    if data is not None:  # damage a valid encoding here and there
        for at in data.draw(st.lists(st.integers(0, max(len(payload) - 1, 0)), max_size=3)):
            if payload:
                payload = payload[:at] + bytes([data.draw(st.integers(0, 255))]) + payload[at + 1 :]
    try:
        expected: Any = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        expected = ValueError
    try:
        found: Any = unpack_data(payload, window=64)
    except (ValueError, TypeError, msgpack.UnpackException):
        found = ValueError
    if expected is not ValueError:  # (msgpack's stack is shallower than the windowed reader's)
        assert packed(found) == packed(expected)  # NaN included
