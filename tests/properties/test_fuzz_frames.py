"""Fuzzing the file store's frame reader, alone and through the read path.

Arbitrary bytes, and intact frames with bytes flipped, cut or inserted, go
to :mod:`calliope.adapters.files.framing` and into a segment file that is
then read with the public API, :func:`reader.read_step` and
:func:`tail_recovery.peek_tail`. Whatever the bytes: only a
``CalliopeError`` comes out, never an event that was not written, and a
damaged length allocates nothing near what it announces.

Each test runs a fixed number of examples (see ``fuzz_settings`` in
tests/conftest.py); ``CALLIOPE_FUZZ_EXAMPLES=100000`` runs that many in each.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import tempfile
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import calliope
from calliope.adapters.files.batch_format import SEAL, batch_frame
from calliope.adapters.files.framing import (
    FRAME_HEADER,
    FRAME_MAGIC,
    MAX_PAYLOAD,
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    Stop,
    encode_frame,
    find_valid_frame,
    frame_length,
    intact_frame_at,
    parse_frames,
)
from calliope.adapters.files.layout import id_digest
from calliope.adapters.files.reader import read_step
from calliope.adapters.files.segment_files import Position, SegmentFiles
from calliope.adapters.files.segment_log import SegmentLog
from calliope.adapters.files.tail_recovery import peek_last, peek_last_version
from calliope.adapters.packing import pack_data
from tests.conftest import fuzz_settings


@attrs.frozen
class Noted:
    text: str
    count: int


def header(length: int, *, magic: int = FRAME_MAGIC, flags: int = 0, crc: int = 0) -> bytes:
    return struct.pack("<BBII", magic, flags, length, crc)


# -- the frame functions on their own -----------------------------------------

payloads = st.lists(st.binary(max_size=64), max_size=6)


@st.composite
def damaged_frames(draw: st.DrawFn) -> tuple[list[bytes], bytes, int]:
    """Intact frames, their bytes damaged once, and where the damage is."""
    frames = [encode_frame(p) for p in draw(payloads)]
    data = b"".join(frames)
    how = draw(st.sampled_from(["flip", "cut", "insert", "none"]))
    at = draw(st.integers(0, len(data)))
    if how == "flip" and at < len(data):
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif how == "cut":
        data = data[:at]
    elif how == "insert":
        data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    else:
        at = len(data)
    return [f[FRAME_HEADER:] for f in frames], data, at


def intact_prefix_of(originals: list[bytes], found: list[bytes | memoryview]) -> bool:
    return [bytes(p) for p in found] == originals[: len(found)]


@fuzz_settings(400)
@given(st.binary(max_size=300), st.integers(0, 320))
@example(header(2**32 - 1), 0)
@example(header(MAX_PAYLOAD), 0)
@example(header(MAX_PAYLOAD + 1), 0)
@example(header(3) + b"ab", 0)
@example(b"", 5)
def test_parse_frames_takes_any_bytes(data: bytes, start: int) -> None:
    parsed = parse_frames(data, start)
    assert parsed.end >= start
    if parsed.stop is Stop.END:
        assert (
            parsed.end == len(data) == start + sum(FRAME_HEADER + len(p) for p in parsed.payloads)
        )
    rebuilt = b"".join(encode_frame(bytes(p)) for p in parsed.payloads)
    assert data[start : parsed.end] == rebuilt  # only intact frames, all of them up to end
    if parsed.stop is Stop.BAD:
        assert not intact_frame_at(data, parsed.end)


@fuzz_settings(300)
@given(damaged_frames(), st.booleans())
def test_damaged_frames_give_an_intact_prefix_only(
    case: tuple[list[bytes], bytes, int], as_view: bool
) -> None:
    originals, data, damaged_at = case
    parsed = parse_frames(memoryview(data) if as_view else data)
    assert intact_prefix_of(originals, parsed.payloads)
    assert parsed.end <= max(damaged_at, len(data)) or parsed.stop is Stop.END


@fuzz_settings(300)
@given(st.binary(max_size=300), st.integers(0, 320))
@example(header(0, crc=zlib.crc32(b"\x00\x00\x00\x00\x00")), 0)
@example(b"\xc5\x00" + b"\xff" * 8, 0)
def test_frame_probes_take_any_bytes(data: bytes, position: int) -> None:
    intact = intact_frame_at(data, position)
    length = frame_length(data[position : position + FRAME_HEADER])
    if intact:
        assert length is not None and parse_frames(data[position:]).payloads
    found = find_valid_frame(data, position)
    if found is not None:
        assert found >= position and intact_frame_at(data, found)
        assert not any(intact_frame_at(data, p) for p in range(position, found))
    else:
        assert not any(intact_frame_at(data, p) for p in range(position, len(data)))


def test_a_negative_position_is_refused() -> None:
    with pytest.raises(calliope.InvalidArgumentError, match="position"):
        parse_frames(encode_frame(b"x"), -1)
    with pytest.raises(calliope.InvalidArgumentError, match="position"):
        intact_frame_at(encode_frame(b"x"), -FRAME_HEADER - 1)
    with pytest.raises(calliope.InvalidArgumentError, match="position"):
        find_valid_frame(encode_frame(b"x"), -1)


@pytest.mark.parametrize("length", [2**32 - 1, MAX_PAYLOAD, MAX_PAYLOAD + 1, 2**31])
def test_a_huge_length_allocates_nothing_like_it(length: int) -> None:
    data = header(length) + b"\x00" * 64
    tracemalloc.start()
    try:
        parse_frames(data)
        intact_frame_at(data, 0)
        find_valid_frame(data, 0)
        frame_length(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


# -- through a stream directory ------------------------------------------------

EVENTS = [Noted(f"n{n}", n) for n in range(6)]


def _write_template(root: str) -> None:
    async def write() -> None:
        async with calliope.open(root, replica_id="w") as app:
            stream = app.journal.event_stream("s", Noted)
            await stream.persist(EVENTS[0])
            await stream.persist_all(EVENTS[1:4])
            await stream.persist(EVENTS[4])
            await stream.persist(EVENTS[5])

    asyncio.run(write())


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        _write_template(os.path.join(directory, "data"))
        yield Path(directory) / "data"


def log_directory(root: Path) -> Path:
    digest = id_digest("s")
    return root / "streams" / digest[:2] / digest / "log"


def segment_of(root: Path) -> Path:
    (segment,) = sorted(log_directory(root).glob("*.seg"))
    return segment


@st.composite
def segment_bytes(draw: st.DrawFn, original: bytes) -> tuple[bytes, bool]:
    """The segment's bytes damaged: flipped, cut, inserted, or replaced;
    and whether intact frames were written that hold other events."""
    how = draw(st.sampled_from(["flip", "flips", "cut", "insert", "garbage", "frames"]))
    data = bytearray(original)
    if how == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    elif how == "flips":
        for at in draw(st.lists(st.integers(SEGMENT_HEADER_SIZE, len(data) - 1), max_size=4)):
            data[at] = draw(st.integers(0, 255))
    elif how == "cut":
        del data[draw(st.integers(0, len(data))) :]
    elif how == "insert":
        at = draw(st.integers(SEGMENT_HEADER_SIZE, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=32))
    elif how == "garbage":
        data[SEGMENT_HEADER_SIZE:] = draw(st.binary(max_size=200))
    else:  # intact frames whose batches are not this stream's
        data[SEGMENT_HEADER_SIZE:] = b"".join(draw(st.lists(foreign_frames(), max_size=3)))
    return bytes(data), how == "frames"


@st.composite
def foreign_frames(draw: st.DrawFn) -> bytes:
    """Intact frames holding batches of any sequence, or any payload at all."""
    if draw(st.booleans()):
        return encode_frame(draw(st.binary(max_size=40)))
    if draw(st.booleans()):
        return SEAL
    item = pack_data(["tests.properties.test_fuzz_frames.Noted", 1, {"text": "x", "count": 1}])
    return batch_frame(draw(st.integers(-3, 9)), "w", {"w": draw(st.integers(0, 9))}, 0, [item])


def _damaged_copy(template: Path, directory: str, data: bytes) -> Path:
    root = Path(directory) / "data"
    shutil.copytree(template, root)
    for index in log_directory(root).glob("*.idx"):
        index.unlink()  # else the index may send readers past the damage
    segment_of(root).write_bytes(data)
    return root


def _read_through_the_api(root: Path, *, foreign: bool = False) -> None:
    """Query, last sequence, persist, query again: each either works, giving
    only events that were written (unless ``foreign`` intact frames were
    put in the file), or raises a CalliopeError."""

    def written(events: list[Noted]) -> bool:
        return foreign or events == EVENTS[: len(events)]

    async def read() -> None:
        async with calliope.open(root, replica_id="r") as app:
            stream = app.journal.event_stream("s", Noted)
            try:
                events = [e.event for e in await stream.query().to_list()]
                assert written(events)
            except calliope.CalliopeError:
                pass
            try:
                last = await stream.last_sequence()
                assert 0 <= last <= (99 if foreign else len(EVENTS))
            except calliope.CalliopeError:
                pass
            try:
                envelope = await stream.persist(Noted("after", 99))
            except calliope.CalliopeError:
                return
            after = [e.event for e in await stream.query().to_list()]
            assert after[-1] == Noted("after", 99) and len(after) == envelope.sequence
            assert written(after[:-1])

    asyncio.run(read())


@fuzz_settings(80)
@given(st.data())
def test_a_damaged_segment_reads_back_a_prefix_or_fails_cleanly(
    template: Path, data: st.DataObject
) -> None:
    damaged, foreign = data.draw(segment_bytes(segment_of(template).read_bytes()))
    with tempfile.TemporaryDirectory() as directory:
        _read_through_the_api(_damaged_copy(template, directory, damaged), foreign=foreign)


@fuzz_settings(100)
@given(st.data())
def test_read_step_and_peek_tail_fail_cleanly(template: Path, data: st.DataObject) -> None:
    damaged, _ = data.draw(segment_bytes(segment_of(template).read_bytes()))
    with tempfile.TemporaryDirectory() as directory:
        root = _damaged_copy(template, directory, damaged)
        log = SegmentLog(
            str(log_directory(root)), stream_id="s", durability="fsync", segment_bytes=1 << 20
        )
        files = SegmentFiles(str(log_directory(root)), "s")
        try:
            assert 0 <= peek_last(files) <= 99
            peek_last_version(files)
        except calliope.CalliopeError:
            pass
        position = Position(1, SEGMENT_HEADER_SIZE)
        try:
            for _ in range(20):
                step = read_step(log, position)
                position = step.position
                if step.at_end:
                    break
        except calliope.CalliopeError:
            pass


def test_a_segment_without_its_header_reads_cleanly(template: Path) -> None:
    original = segment_of(template).read_bytes()
    for data in (b"", SEGMENT_HEADER[:5], b"X" * SEGMENT_HEADER_SIZE + original[16:]):
        with tempfile.TemporaryDirectory() as directory:
            _read_through_the_api(_damaged_copy(template, directory, data))


# -- frames inside events' data ------------------------------------------------


@attrs.frozen
class Blob:
    data: bytes


def _frames_inside(tail: bytes) -> bytes:
    """An event's bytes holding intact frames: a seal, a batch, anything."""
    item = pack_data(["x", 1, {}])
    return b"<" + SEAL + batch_frame(9, "w", {"w": 9}, 0, [item]) + encode_frame(tail) + b">"


def _blob_log(directory: str, inner: bytes) -> tuple[Path, int, bytes]:
    """A log of one small event then a Blob holding ``inner``; the root,
    where ``inner`` starts in the segment, and the log's lock file as it was
    before the Blob was written (its committed extent then: restoring it
    makes the Blob's write one a crash interrupted, never acknowledged)."""
    root = Path(directory) / "data"
    before = b""

    async def write() -> None:
        nonlocal before
        async with calliope.open(root, replica_id="w") as app:
            await app.journal.event_stream("s", Blob).persist(Blob(b"first"))
            before = (segment_of(root).parent / "lock").read_bytes()
            await app.journal.event_stream("s", Blob).persist(Blob(inner))

    asyncio.run(write())
    data = segment_of(root).read_bytes()
    return root, data.index(inner), before


def _query_blobs(root: Path) -> list[Blob]:
    async def query() -> list[Blob]:
        async with calliope.open(root, replica_id="r") as app:
            stream = app.journal.event_stream("s", Blob)
            return [e.event for e in await stream.query().to_list()]

    return asyncio.run(query())


@fuzz_settings(30)
@given(st.binary(max_size=8), st.data())
def test_a_torn_event_holding_frames_is_a_torn_tail(tail: bytes, data: st.DataObject) -> None:
    inner = _frames_inside(tail)
    with tempfile.TemporaryDirectory() as directory:
        root, at, before = _blob_log(directory, inner)
        segment = segment_of(root)
        whole = segment.read_bytes()
        # Torn after an inner frame, and before the end of its own frame
        # (an intact frame past the extent is a dead writer's: committed).
        cut = data.draw(st.integers(at + len(SEAL), len(whole) - 1), label="cut")
        segment.write_bytes(whole[:cut])
        (segment.parent / "lock").write_bytes(before)  # by a crash: never acknowledged
        assert _query_blobs(root) == [Blob(b"first")]


def test_an_index_entry_naming_a_frame_inside_an_event_is_ignored() -> None:
    inner = _frames_inside(b"not a batch")
    with tempfile.TemporaryDirectory() as directory:
        root, at, _ = _blob_log(directory, inner)
        wrong = at + len(inner) - 1 - FRAME_HEADER - len(b"not a batch")
        index = segment_of(root).with_suffix(".idx")
        index.write_bytes(struct.pack("<QQ", 2, wrong))

        async def use_the_index() -> None:
            async with calliope.open(root, replica_id="r") as app:
                stream = app.journal.event_stream("s", Blob)
                assert [e.event for e in await stream.query(2).to_list()] == [Blob(inner)]
                assert await stream.last_sequence() == 2
                assert (await stream.persist(Blob(b"third"))).sequence == 3

        asyncio.run(use_the_index())
