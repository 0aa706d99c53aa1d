"""Nothing acknowledged vanishes and no sequence is given out twice.

Damage to what a writer acknowledged (its committed extent, an index
entry, a later segment, another replica's version naming it) is a
CorruptJournalError for readers and writers alike, until the user repairs
the log explicitly; a torn write that nothing says was acknowledged is
moved aside, never deleted; readers never deliver a frame before its
writer's fsync completed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import struct
from pathlib import Path

import msgpack
import pytest

import calliope
from calliope.adapters.files.batch_format import batch_frame
from calliope.adapters.files.framing import encode_frame
from calliope.adapters.files.layout import id_digest
from tests.integration.events import ItemAdded


def log_dir(root: Path, stream_id: str, replica_id: str | None = None) -> Path:
    digest = id_digest(stream_id)
    stream = root / "streams" / digest[:2] / digest
    return stream / "log" if replica_id is None else stream / "replicas" / id_digest(replica_id)


def segments(root: Path, stream_id: str) -> list[Path]:
    return sorted(log_dir(root, stream_id).glob("*.seg"))


async def write(root: Path, stream_id: str, count: int, **options: int) -> None:
    async with calliope.open(root, replica_id="writer", **options) as app:  # type: ignore[arg-type]
        stream = app.journal.event_stream(stream_id, ItemAdded)
        for n in range(count):
            await stream.persist(ItemAdded(f"{n:04d}"))


async def skus(root: Path, stream_id: str) -> list[str]:
    async with calliope.open(root, replica_id="reader") as app:
        query = app.journal.event_stream(stream_id, ItemAdded).query()
        return [envelope.event.sku for envelope in await query.to_list()]


async def last_sequence(root: Path, stream_id: str) -> int:
    async with calliope.open(root, replica_id="reader") as app:
        return await app.journal.event_stream(stream_id, ItemAdded).last_sequence()


async def a_then_b_after_it(root: Path) -> None:
    """Replica ``a`` writes three events to the replicated stream ``r``;
    replica ``b`` reads them, then writes two of its own, whose versions
    name ``a:3``."""
    async with calliope.open(root, replica_id="a") as app:
        stream = app.journal.replicated_event_stream("r", ItemAdded)
        for n in range(3):
            await stream.persist(ItemAdded(f"a{n}"))
    async with calliope.open(root, replica_id="b") as app:
        stream = app.journal.replicated_event_stream("r", ItemAdded)
        await stream.query().to_list()
        await stream.persist(ItemAdded("b0"))
        await stream.persist(ItemAdded("b1"))


async def refused_everywhere(root: Path, stream_id: str) -> calliope.CorruptJournalError:
    """Readers and writers both refuse the stream; the error says what to do."""
    with pytest.raises(calliope.CorruptJournalError) as read:
        await skus(root, stream_id)
    with pytest.raises(calliope.CorruptJournalError):
        await write(root, stream_id, 1)
    assert "repair" in str(read.value)
    return read.value


async def test_a_flipped_bit_in_the_last_acknowledged_frame_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 5)
    (segment,) = segments(root, "s")
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0x01  # inside the last frame: fsynced and acknowledged
    segment.write_bytes(bytes(data))
    error = await refused_everywhere(root, "s")
    assert error.path == str(segment)
    assert segment.read_bytes() == bytes(data)  # nothing was cut, no sequence reused


async def test_a_truncated_last_segment_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 5)
    (segment,) = segments(root, "s")
    data = segment.read_bytes()
    segment.write_bytes(data[:-30])  # the last frame, acknowledged, lost its end
    await refused_everywhere(root, "s")
    segment.write_bytes(data[: -len(data) // 3])
    await refused_everywhere(root, "s")


async def test_a_deleted_last_segment_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 300, segment_bytes=4096)
    files = segments(root, "s")
    assert len(files) > 2
    files[-1].unlink()
    await refused_everywhere(root, "s")
    assert await last_sequence(root, "s") == 300  # what was acknowledged, not less


async def test_a_missing_first_segment_makes_queries_fail_not_start_later(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 300, segment_bytes=4096)
    segments(root, "s")[0].unlink()
    with pytest.raises(calliope.CorruptJournalError, match="missing"):
        await skus(root, "s")


async def test_a_torn_tail_holding_an_intact_looking_frame_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    await write(root, "s", 3)
    (segment,) = segments(root, "s")
    intact = segment.read_bytes()
    # A large event's write torn by a crash; its payload happens to hold
    # bytes that form an intact frame.
    payload = b"x" * 100 + encode_frame(b"an intact frame inside an event") + b"y" * 4000
    torn = encode_frame(payload)[:300]
    segment.write_bytes(intact + torn)
    with caplog.at_level(logging.ERROR, logger="calliope.files"):
        assert await skus(root, "s") == ["0000", "0001", "0002"]
        await write(root, "s", 1)
    assert await skus(root, "s") == ["0000", "0001", "0002", "0000"]
    (aside,) = segment.parent.glob("*.aside")
    assert aside.read_bytes() == torn
    assert f"moved {len(torn)} bytes at byte offset {len(intact)}" in caplog.text


async def test_damage_the_index_names_is_an_error_even_without_an_extent(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    index = log_dir(root, "s") / f"{1:020d}.idx"
    async with calliope.open(root, replica_id="writer") as app:
        stream = app.journal.event_stream("s", ItemAdded)
        while not index.exists():  # until the index names the last frame
            await stream.persist(ItemAdded("x" * 2000))
    (segment,) = segments(root, "s")
    (log_dir(root, "s") / "lock").write_bytes(b"")  # no extent, as an older version wrote
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF  # the last frame, which the index names
    segment.write_bytes(bytes(data))
    with pytest.raises(calliope.CorruptJournalError, match="index"):
        await write(root, "s", 1)
    assert segment.read_bytes() == bytes(data)


def append_unsynced_frame(root: Path, sequence: int) -> None:
    """What a writer between its write and its fsync leaves: an intact
    frame past the committed extent."""
    (segment,) = segments(root, "s")
    item = msgpack.packb(["test.item-added", 1, {"sku": "unsynced", "quantity": 1}])
    frame = batch_frame(sequence, "other", {"other": sequence}, 0, [item])
    with segment.open("ab") as handle:
        handle.write(frame)


async def test_readers_never_deliver_a_frame_before_its_writer_fsynced(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 3)
    lock = os.open(log_dir(root, "s") / "lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a writer is between its write and its fsync
        append_unsynced_frame(root, 4)
        assert await skus(root, "s") == ["0000", "0001", "0002"]
        assert await last_sequence(root, "s") == 3
    finally:
        os.close(lock)  # the writer is gone; its frame is intact
    # The next reader finds no writer busy: it commits the dead writer's
    # frame (fsync, then the extent), and delivers it.
    assert await skus(root, "s") == ["0000", "0001", "0002", "unsynced"]
    assert await last_sequence(root, "s") == 4


async def test_repair_moves_damage_aside_and_the_stream_is_usable_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    await write(root, "s", 5)
    (segment,) = segments(root, "s")
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0x01
    segment.write_bytes(bytes(data))
    async with calliope.open(root, replica_id="fixer") as app:
        report = await app.journal.repair("s")
        assert report.repaired and report.last_sequence == 4
        # (the log line says what was lost; it once said nothing acknowledged was)
        logged = caplog.records[0].getMessage()
        assert logged.endswith("a repair asked for; the events there are lost to readers")
        (aside,) = report.moved_aside
        assert Path(aside).read_bytes() == bytes(data[-report.bytes_moved :])
        again = await app.journal.repair("s")  # an intact log is left as it is
        assert not again.repaired and again.last_sequence == 4
        envelope = await app.journal.event_stream("s", ItemAdded).persist(ItemAdded("new"))
        assert envelope.sequence == 5
    assert await skus(root, "s") == ["0000", "0001", "0002", "0003", "new"]


async def test_repair_of_a_deleted_middle_segment_keeps_the_prefix(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 300, segment_bytes=4096)
    files = segments(root, "s")
    files[1].unlink()
    async with calliope.open(root, replica_id="fixer") as app:
        report = await app.journal.repair("s")
    first_of_second = int(files[1].name[:-4])
    assert report.last_sequence == first_of_second - 1
    assert len(report.moved_aside) == len(files) - 2
    assert await skus(root, "s") == [f"{n:04d}" for n in range(first_of_second - 1)]
    await write(root, "s", 1)
    assert await last_sequence(root, "s") == first_of_second


async def test_a_replica_never_reuses_a_sequence_another_replica_observed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await a_then_b_after_it(root)
    shutil.rmtree(log_dir(root, "r", "a"))  # replica a's log is lost
    async with calliope.open(root, replica_id="a") as app:
        stream = app.journal.replicated_event_stream("r", ItemAdded)
        with pytest.raises(calliope.CorruptJournalError, match="observed"):
            await stream.persist(ItemAdded("a-again"))


async def test_a_read_only_reader_leaves_a_dead_writers_frame_alone(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 3)
    append_unsynced_frame(root, 4)
    (segment,) = segments(root, "s")
    lock = log_dir(root, "s") / "lock"
    before = segment.read_bytes(), lock.read_bytes()
    async with calliope.open(root, read_only=True) as app:
        stream = app.journal.event_stream("s", ItemAdded)
        assert [e.event.sku for e in await stream.query().to_list()] == ["0000", "0001", "0002"]
        assert await stream.last_sequence() == 3
        with pytest.raises(calliope.ReadOnlyStoreError):
            await app.journal.repair("s")
    assert (segment.read_bytes(), lock.read_bytes()) == before


async def test_a_garbage_index_entry_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 5)
    index = log_dir(root, "s") / f"{1:020d}.idx"
    with index.open("ab") as handle:  # entries naming impossible sequences and offsets
        handle.write(struct.pack("<QQ", 3, 2**64 - 1) + struct.pack("<QQ", 2**64 - 1, 20))
    assert await skus(root, "s") == ["0000", "0001", "0002", "0003", "0004"]
    await write(root, "s", 1)
    assert await last_sequence(root, "s") == 6


async def test_repairing_a_log_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "plain", 2)
    async with calliope.open(root, replica_id="fixer") as app:
        report = await app.journal.repair("plain", replica_id="a")  # the wrong kind
        assert not report.repaired and report.last_sequence == 0
        assert (await app.journal.repair("nothing")).last_sequence == 0
    assert not (log_dir(root, "plain").parent / "replicas").exists()
    await write(root, "plain", 1)  # still a plain stream, writable
    assert await last_sequence(root, "plain") == 3


async def test_a_damaged_extent_never_lets_damage_pass_for_a_torn_write(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 5)
    (segment,) = segments(root, "s")
    lock = log_dir(root, "s") / "lock"
    record = bytearray(lock.read_bytes())
    record[-1] ^= 0x01  # the extent's checksum
    lock.write_bytes(bytes(record))
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0x01  # and the last, acknowledged frame
    segment.write_bytes(bytes(data))
    with pytest.raises(calliope.CorruptJournalError, match="extent"):
        await write(root, "s", 1)
    assert segment.read_bytes() == bytes(data)  # nothing cut, no sequence reused


async def test_a_damaged_extent_over_an_intact_log_is_recorded_again(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 5)
    lock = log_dir(root, "s") / "lock"
    lock.write_bytes(b"\xff" * 32)
    assert await skus(root, "s") == [f"{n:04d}" for n in range(5)]
    await write(root, "s", 1)
    assert await last_sequence(root, "s") == 6


async def test_with_durability_flush_a_power_loss_is_accepted_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    async with calliope.open(root, replica_id="writer", durability="flush") as app:
        stream = app.journal.event_stream("s", ItemAdded)
        for n in range(5):
            await stream.persist(ItemAdded(f"{n:04d}"))
    (segment,) = segments(root, "s")
    segment.write_bytes(segment.read_bytes()[:-30])  # the OS never wrote the last one out
    with caplog.at_level(logging.ERROR, logger="calliope.files"):
        assert await skus(root, "s") == ["0000", "0001", "0002", "0003"]
    assert "durability='flush'" in caplog.text
    async with calliope.open(root, replica_id="writer", durability="flush") as app:
        envelope = await app.journal.event_stream("s", ItemAdded).persist(ItemAdded("next"))
    assert envelope.sequence == 5


async def test_last_sequence_agrees_with_a_query_over_a_stale_extent(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 2)
    lock = log_dir(root, "s") / "lock"
    stale = lock.read_bytes()
    await write(root, "s", 3)
    lock.write_bytes(stale)  # a power loss kept the segment's pages, not the lock file's
    assert await last_sequence(root, "s") == 5
    assert len(await skus(root, "s")) == 5


async def test_a_replica_log_is_not_repaired_below_what_others_observed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await a_then_b_after_it(root)
    (segment,) = sorted(log_dir(root, "r", "a").glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0x01  # a:3, which b observed
    segment.write_bytes(bytes(data))
    async with calliope.open(root, replica_id="fixer") as app:
        with pytest.raises(calliope.CorruptJournalError, match="observed"):
            await app.journal.repair("r", replica_id="a")
    assert segment.read_bytes() == bytes(data)  # nothing changed


async def test_a_replicated_query_never_silently_drops_events_after_lost_ones(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    await a_then_b_after_it(root)
    shutil.rmtree(log_dir(root, "r", "a"))  # replica a's log is lost
    async with calliope.open(root, replica_id="c") as app:
        stream = app.journal.replicated_event_stream("r", ItemAdded)
        with pytest.raises(calliope.CorruptJournalError, match="'a'"):
            await stream.query().to_list()


@pytest.mark.parametrize("damage", ["first deleted", "middle deleted", "seal cut"])
async def test_writers_refuse_a_log_whose_segments_do_not_follow_on(
    tmp_path: Path, damage: str
) -> None:
    root = tmp_path / "data"
    await write(root, "s", 150, segment_bytes=4096)
    files = segments(root, "s")
    assert len(files) == 3
    if damage == "first deleted":
        files[0].unlink()
    elif damage == "middle deleted":
        files[1].unlink()
    else:
        files[1].write_bytes(files[1].read_bytes()[:-3])
    with pytest.raises(calliope.CorruptJournalError):
        await write(root, "s", 1)


async def test_a_query_at_the_end_commits_a_dead_writers_frame_as_last_sequence_does(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    await write(root, "s", 3)
    async with calliope.open(root, replica_id="reader") as app:
        stream = app.journal.event_stream("s", ItemAdded)
        assert len(await stream.query().to_list()) == 3  # the read hint is at the end now
        append_unsynced_frame(root, 4)  # then a writer dies past the extent
        events = await stream.query(from_sequence=4).to_list()
        assert [e.event.sku for e in events] == ["unsynced"]
        assert await stream.last_sequence() == 4
