"""Fuzzing the snapshot reader: damaged snapshot files.

The contract (calliope/adapters/files/snapshots.py): ``load`` returns the
newest intact snapshot, or None when none is intact, whatever the files
hold, falling back past a damaged file with a warning. Here the newest
file (or every file) is flipped, cut, extended, replaced by arbitrary
bytes, or replaced by an intact frame whose payload is any msgpack value;
``decode_snapshot`` gets arbitrary bytes. A snapshot saved by the app or
None comes back, never an exception (only ``load_snapshot`` decoding a
crafted record's data may raise EventDecodingError).

Each test runs a fixed number of examples (see ``fuzz_settings`` in
tests/conftest.py); ``CALLIOPE_FUZZ_EXAMPLES=100000`` runs that many in each.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import calliope
from calliope.adapters.files.framing import frame_header
from calliope.adapters.files.layout import id_digest
from calliope.adapters.files.snapshots import SNAPSHOT_HEADER, FileSnapshots, decode_snapshot
from calliope.adapters.packing import LARGE
from calliope.shell.ports import SnapshotRecord
from tests.conftest import fuzz_settings


@attrs.frozen
class Tally:
    counts: dict[str, int]


SAVED = {sequence: Tally({"n": sequence}) for sequence in (1, 2, 3)}


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    async def save(root: Path) -> None:
        async with calliope.open(root, replica_id="w") as app:
            for sequence, state in SAVED.items():
                await app.snapshots.save_snapshot("t", state, sequence=sequence)

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "data"
        asyncio.run(save(root))
        yield root


def snapshot_files(root: Path) -> list[Path]:
    digest = id_digest("t")
    return sorted((root / "snapshots" / digest[:2] / digest).glob("*.snap"))


def framed(payload: bytes) -> bytes:
    """A snapshot file whose one frame is intact and holds ``payload``."""
    return SNAPSHOT_HEADER + frame_header([payload]) + payload


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=6),
    st.binary(max_size=4),
)
junk = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=2), scalars)


@st.composite
def record_like(draw: st.DrawFn) -> bytes:
    """The payload of an intact frame: a record's fields, each perhaps junk."""
    fields: list[Any] = [
        draw(st.integers(-2, 2**64 - 1) | junk),
        draw(st.integers(-(2**63), 2**64 - 1) | junk),
        draw(st.sampled_from([f"{Tally.__module__}.Tally", "other"]) | junk),
        draw(st.integers(-1, 3) | junk),
        draw(st.just({"counts": {"n": 7}}) | junk),
    ]
    arity = draw(st.integers(0, 6))
    return bytes(msgpack.packb([*fields, None][:arity], use_bin_type=True))


@st.composite
def damaged(draw: st.DrawFn, original: bytes) -> tuple[bytes, bool]:
    """The file's bytes damaged, and whether they are an intact frame (so
    perhaps a well-formed record that was never saved)."""
    how = draw(st.sampled_from(["flip", "cut", "insert", "garbage", "framed", "msgpack"]))
    data = bytearray(original)
    if how == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    elif how == "cut":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif how == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=16))
    elif how == "garbage":
        return draw(st.binary(max_size=100)), False
    elif how == "framed":
        return framed(draw(record_like())), True
    else:
        return framed(draw(st.binary(max_size=40))), True
    return bytes(data), False


def check_record(record: SnapshotRecord | None) -> None:
    if record is not None:
        assert type(record.sequence) is int and record.sequence >= 0
        assert type(record.timestamp_us) is int
        assert type(record.type_name) is str
        assert type(record.schema_version) is int and record.schema_version >= 1


@fuzz_settings(500)
@given(st.binary(max_size=120) | record_like().map(framed))
@example(framed(b"\x01"))  # not an array: SnapshotRecord(*1) was a TypeError caught
@example(framed(msgpack.packb({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})))  # five keys
@example(framed(msgpack.packb(["1", 0, "T", 1, {}])))  # a str sequence
@example(framed(msgpack.packb([1, 2**64 - 1, "T", 1, {}])))  # past datetime's range
@example(framed(msgpack.packb([1, 0, ["T"], 1, {}])))  # a list type name
@example(framed(msgpack.packb([1, 0, "T", True, {}])))  # a bool schema version
@example(framed(b"\xdd\xff\xff\xff\xff"))  # an array of 2**32 - 1
@example(framed(b"\x91" * 5000))  # nested past msgpack's stack
def test_decode_snapshot_gives_a_well_typed_record_or_none(data: bytes) -> None:
    check_record(decode_snapshot(data))


def _load_from(root: Path) -> tuple[SnapshotRecord | None, calliope.Snapshot[Tally] | None]:
    async def load() -> tuple[SnapshotRecord | None, calliope.Snapshot[Tally] | None]:
        record = await FileSnapshots(str(root)).load("t")
        async with calliope.open(root, replica_id="r") as app:
            try:
                return record, await app.snapshots.load_snapshot("t", Tally)
            except calliope.EventDecodingError:
                return record, None

    return asyncio.run(load())


@fuzz_settings(150)
@given(st.data(), st.booleans())
def test_a_damaged_newest_snapshot_falls_back_or_gives_none(
    template: Path, data: st.DataObject, every_file: bool
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "data"
        shutil.copytree(template, root)
        files = snapshot_files(root)
        crafted = False
        for path in files if every_file else files[-1:]:
            damaged_bytes, framed_payload = data.draw(damaged(path.read_bytes()))
            path.write_bytes(damaged_bytes)
            crafted = crafted or framed_payload
        record, snapshot = _load_from(root)
        check_record(record)
        assert snapshot is None or isinstance(snapshot.state, Tally)
        if crafted:
            return  # an intact frame may hold a well-formed record never saved
        if every_file:
            assert record is None and snapshot is None
        else:  # the newest is damaged: the one before it comes back
            assert record is not None and record.sequence == 2
            assert snapshot is not None and snapshot.state == SAVED[2]


@pytest.mark.parametrize("length", [2**32 - 1, LARGE + 1])
def test_a_huge_length_in_a_snapshot_allocates_nothing_like_it(length: int) -> None:
    for payload in (b"\xdd", b"\xdf", b"\xc6", b"\xdb"):
        one_large_value = b"\xc6" + struct.pack(">I", LARGE) + b"\x00" * LARGE
        data = framed(payload + struct.pack(">I", length) + one_large_value)
        tracemalloc.start()
        try:
            assert decode_snapshot(data) is None
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 3 * len(data) + 64 * 1024
