"""Read-only readers see the damage a writer sees.

``calliope verify``, ``calliope show`` and every ``calliope.open(...,
read_only=True)`` read a store without its locks and write nothing. Each
case here damages a store as a hostile tester did and checks that a
read-only reader, ``calliope verify`` (exit 3 naming the file) and a
writable open all tell the same truth: a deleted or truncated segment,
a replica log that lost events other replicas observed, a damaged extent
record, a damaged feed index (rebuilt, at the same positions, once moved
aside) and a lost ``calliope.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import calliope
from calliope.adapters.files.feed_index import ENTRY_SIZE, FeedIndex, IndexEntry, log_digests
from calliope.adapters.files.framing import SEGMENT_HEADER_SIZE
from calliope.cli.common import raw_store
from calliope.core.replication import RecordBatch
from tests.integration.events import ItemAdded
from tests.integration.test_acknowledged_data import a_then_b_after_it, log_dir, segments, write
from tests.integration.test_cli import run
from tests.support import flip_byte


def verify(store: Path) -> subprocess.CompletedProcess[str]:
    return run("verify", str(store))


async def read_only_skus(root: Path, stream_id: str) -> list[str]:
    async with calliope.open(root, read_only=True) as app:
        query = app.journal.event_stream(stream_id, ItemAdded).query()
        return [envelope.event.sku for envelope in await query.to_list()]


async def read_only_error(root: Path, stream_id: str) -> calliope.CorruptJournalError:
    with pytest.raises(calliope.CorruptJournalError) as raised:
        await read_only_skus(root, stream_id)
    return raised.value


async def writer_error(root: Path, stream_id: str) -> calliope.CorruptJournalError:
    with pytest.raises(calliope.CorruptJournalError) as raised:
        await write(root, stream_id, 1)
    return raised.value


async def replica_log(root: Path, stream_id: str, replica_id: str) -> list[RecordBatch]:
    """One replica's log, read as ``calliope show`` and ``verify`` read it."""
    store = raw_store(str(root))
    await store.open()
    try:
        reader = store.replicated.read_replica(stream_id, replica_id, 1)
        return [batch async for batches in reader for batch in batches]
    finally:
        await store.aclose()


def verify_names(store: Path, path: str | Path, *also: str) -> str:
    done = verify(store)
    assert done.returncode == 3, done.stdout + done.stderr
    assert str(path) in done.stderr
    for text in also:
        assert text in done.stderr
    return done.stderr


# -- 1. a deleted or truncated segment ------------------------------------------------


async def test_a_deleted_only_segment_is_damage_to_every_reader(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "cart-42", 10)
    (segment,) = segments(root, "cart-42")
    segment.unlink()
    error = await read_only_error(root, "cart-42")
    assert error.path == str(segment)
    assert "missing" in str(error) and "sequence 10" in str(error)
    verify_names(root, segment, "missing")
    refused = await writer_error(root, "cart-42")
    assert refused.path == str(segment) and "missing" in str(refused)
    assert not segment.exists()  # the writer created nothing in its place
    assert (await read_only_error(root, "cart-42")).path == str(segment)


async def test_a_truncated_segment_is_named_where_its_intact_frames_end(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "cart-42", 10)
    (segment,) = segments(root, "cart-42")
    os.truncate(segment, 400)
    error = await read_only_error(root, "cart-42")
    assert error.path == str(segment)
    assert SEGMENT_HEADER_SIZE < error.offset < 400  # where the cut frame starts, not 16
    assert "before its committed end" in str(error)
    verify_names(root, segment, f"offset {error.offset}")
    assert (await writer_error(root, "cart-42")).offset == error.offset
    intact: list[str] = []
    async with calliope.open(root, read_only=True) as app:  # what precedes it is delivered
        with pytest.raises(calliope.CorruptJournalError):
            async for envelope in app.journal.event_stream("cart-42", ItemAdded).query():
                intact.append(envelope.event.sku)
    assert intact == [f"{n:04d}" for n in range(len(intact))] and 0 < len(intact) < 10
    async with calliope.open(root, replica_id="fixer") as app:
        report = await app.journal.repair("cart-42")
    assert report.last_sequence == len(intact)
    assert report.moved_aside[0].endswith(f".{error.offset}.aside")  # cut where verify said
    assert await read_only_skus(root, "cart-42") == intact
    assert verify(root).returncode == 0


async def test_a_segment_truncated_at_a_frame_boundary_is_damage_there(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "cart-42", 10)
    (segment,) = segments(root, "cart-42")
    os.truncate(segment, 400)
    boundary = (await read_only_error(root, "cart-42")).offset  # where the cut frame starts
    os.truncate(segment, boundary)  # now every frame left is whole
    error = await read_only_error(root, "cart-42")
    assert error.offset == boundary and "the file ends there" in str(error)
    assert (await writer_error(root, "cart-42")).offset == boundary
    verify_names(root, segment, f"offset {boundary}")


async def test_a_replica_log_whose_segment_was_deleted_is_damage(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await a_then_b_after_it(root)
    (segment,) = sorted(log_dir(root, "r", "a").glob("*.seg"))
    segment.unlink()
    with pytest.raises(calliope.CorruptJournalError) as raised:
        await replica_log(root, "r", "a")
    assert raised.value.path == str(segment)
    verify_names(root, segment, "r (a)")


async def test_a_deleted_replica_log_that_others_observed_is_damage(tmp_path: Path) -> None:
    """Replica a's log is deleted whole: nothing lists it any more, but b's
    versions name a:3. The port's read_replica delivers b's log as it is
    (the port contract lets a version name what no log holds), so the
    check is made across the logs: by verify, by show, and by a replicated
    query, as by a writer of a."""
    root = tmp_path / "data"
    await a_then_b_after_it(root)
    shutil.rmtree(log_dir(root, "r", "a"))
    assert [batch.writer for batch in await replica_log(root, "r", "b")] == ["b", "b"]
    async with calliope.open(root, read_only=True) as app:
        with pytest.raises(calliope.CorruptJournalError, match="'a'"):
            await app.journal.replicated_event_stream("r", ItemAdded).query().to_list()
    done = verify(root)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "damage: r (a): " in done.stderr and "up to sequence 3" in done.stderr
    shown = run("show", str(root), "r")
    assert shown.returncode == 3 and "replica 'a'" in shown.stderr
    repaired = run("repair", "--yes", str(root))
    assert repaired.returncode == 3 and "repaired" not in repaired.stdout  # only a backup can
    assert "restore what it names from a backup" in repaired.stderr
    async with calliope.open(root, replica_id="a") as app:
        with pytest.raises(calliope.CorruptJournalError, match="observed"):
            await app.journal.replicated_event_stream("r", ItemAdded).persist(ItemAdded("a3"))


# -- 2. a damaged extent record ---------------------------------------------------------


def flip(path: Path, offset: int) -> None:
    flip_byte(path, offset, 0x01)


async def test_a_damaged_extent_over_a_damaged_last_frame_is_damage_to_readers(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    await write(root, "cart-42", 10)
    (segment,) = segments(root, "cart-42")
    flip(log_dir(root, "cart-42") / "lock", 28)
    flip(segment, segment.stat().st_size - 1)
    error = await read_only_error(root, "cart-42")
    assert error.path == str(segment) and "extent" in str(error)
    async with calliope.open(root, read_only=True) as app:  # it agrees with queries
        with pytest.raises(calliope.CorruptJournalError, match="extent"):
            await app.journal.event_stream("cart-42", ItemAdded).last_sequence()
    refused = await writer_error(root, "cart-42")
    assert (refused.path, refused.offset) == (error.path, error.offset)
    verify_names(root, segment, f"offset {error.offset}", "extent")
    repaired = run("repair", "--yes", str(root))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "keeps sequences 1..9" in repaired.stdout
    assert await read_only_skus(root, "cart-42") == [f"{n:04d}" for n in range(9)]


@pytest.mark.parametrize("offset", [0, 5, 13, 21, 28])
async def test_a_damaged_extent_over_intact_frames_reads_them_as_a_writer_keeps_them(
    tmp_path: Path, offset: int
) -> None:
    root = tmp_path / "data"
    await write(root, "cart-42", 10)
    lock = log_dir(root, "cart-42") / "lock"
    intact = lock.read_bytes()
    flip(lock, offset)
    everything = [f"{n:04d}" for n in range(10)]
    assert await read_only_skus(root, "cart-42") == everything
    assert verify(root).returncode == 0
    assert lock.read_bytes() != intact  # read-only readers leave it as it is
    async with calliope.open(root, replica_id="reader") as app:  # a writable one records it
        stream = app.journal.event_stream("cart-42", ItemAdded)
        assert [e.event.sku for e in await stream.query().to_list()] == everything
    assert lock.read_bytes() == intact
    await write(root, "cart-42", 1)
    assert len(await read_only_skus(root, "cart-42")) == 11


# -- 3. the feed index ------------------------------------------------------------------


async def feed_of(root: Path, **options: str | bool) -> list[tuple[str, str, str]]:
    async with calliope.open(root, **options) as app:  # type: ignore[arg-type]
        return [
            (e.stream_id, e.event.sku, str(e.position))
            async for e in app.journal.feed(ItemAdded).query()
        ]


async def write_a_feed(root: Path) -> list[tuple[str, str, str]]:
    """200 writes on several streams, a replicated one and a batch among them."""
    async with calliope.open(root, replica_id="w") as app:
        for n in range(190):
            await app.journal.event_stream(f"cart-{n % 7}", ItemAdded).persist(ItemAdded(f"p{n}"))
        await app.journal.event_stream("cart-0", ItemAdded).persist_all(
            [ItemAdded("all-1"), ItemAdded("all-2")]
        )
        shared = app.journal.replicated_event_stream("shared", ItemAdded)
        for n in range(9):
            await shared.persist(ItemAdded(f"r{n}"))
    feed = await feed_of(root, read_only=True)
    assert len(feed) == 201
    return feed


async def test_a_damaged_feed_index_moved_aside_is_rebuilt_at_the_same_positions(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    before = await write_a_feed(root)
    index = root / "feed" / "index"
    flip(index, 10000)
    with pytest.raises(calliope.CorruptJournalError, match="move the file aside") as raised:
        await feed_of(root, read_only=True)
    assert (raised.value.path, raised.value.offset) == (str(index), 10000 // ENTRY_SIZE * 64)
    verify_names(root, index, "offset 9984")
    # Exactly the advice a tester followed: move it aside, delete the sync record.
    index.rename(root / "feed" / "index.bad")
    (root / "feed" / "synced").unlink()
    assert await feed_of(root, replica_id="w") == before  # same events, same positions
    assert await feed_of(root, read_only=True) == before
    assert verify(root).returncode == 0
    async with calliope.open(root, replica_id="w") as app:
        await app.journal.event_stream("cart-1", ItemAdded).persist(ItemAdded("next"))
    after = await feed_of(root, read_only=True)
    assert after[:-1] == before and after[-1][1] == "next"
    assert int(after[-1][2].split(".")[0]) > int(before[-1][2].split(".")[0])


async def test_a_feed_index_moved_aside_alone_is_rebuilt_and_read_only_readers_say_so(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    before = await write_a_feed(root)
    index = root / "feed" / "index"
    index.rename(root / "feed" / "index.old")  # feed/synced still says 200 entries
    with pytest.raises(calliope.CorruptJournalError, match="rebuilt") as raised:
        await feed_of(root, read_only=True)
    assert raised.value.path == str(index)
    verify_names(root, index)
    assert await feed_of(root, replica_id="w") == before
    assert await feed_of(root, read_only=True) == before


async def test_a_rebuild_cut_short_by_a_crash_is_done_again(tmp_path: Path) -> None:
    """A rebuild marks the sync record first: a crash before it wrote
    anything (the index cut at 50 entries, the record saying "restoring"
    from there) makes the next open rebuild again, although the index then
    ends exactly where the record says."""
    root = tmp_path / "data"
    before = await write_a_feed(root)
    index = root / "feed" / "index"
    entries = index.stat().st_size // ENTRY_SIZE
    os.truncate(index, 50 * ENTRY_SIZE)
    (root / "feed" / "synced").write_text("restoring 50\n")
    assert await feed_of(root, replica_id="w") == before
    assert (root / "feed" / "synced").read_text().split()[1] == str(entries)


def index_entries(root: Path) -> list[IndexEntry]:
    index = FeedIndex(str(root), read_only=True)
    index.open()
    try:
        return index.read(0, 10_000)
    finally:
        index.close()


async def test_a_rebuild_passes_over_a_damaged_log_and_rebuilds_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    await write_a_feed(root)
    entries = index_entries(root)
    (segment,) = segments(root, "cart-3")
    flip(segment, segment.stat().st_size - 3)  # its last write is damaged
    stream, _ = log_digests(str(log_dir(root, "cart-3")))
    damaged = max((e for e in entries if e.stream == stream), key=lambda e: e.number)
    (root / "feed" / "index").unlink()
    (root / "feed" / "synced").unlink()
    async with calliope.open(root, replica_id="w"):  # rebuilds what it can
        pass
    assert str(segment) in caplog.text  # the damaged log is named
    rebuilt = index_entries(root)
    assert rebuilt[damaged.number].void
    assert rebuilt[: damaged.number] + rebuilt[damaged.number + 1 :] == [
        e for e in entries if e is not damaged
    ]


# -- 4. a lost calliope.json ----------------------------------------------------------


async def test_a_lost_calliope_json_says_how_to_recover(tmp_path: Path) -> None:
    root = tmp_path / "data"
    async with calliope.open(root) as app:  # the default replica id
        default = app.replica_id
        await app.journal.event_stream("cart-42", ItemAdded).persist(ItemAdded("a"))
    meta = root / "calliope.json"
    kept = json.loads(meta.read_text())
    meta.unlink()
    assert await read_only_skus(root, "cart-42") == ["a"]
    with pytest.raises(calliope.StorageError) as raised:
        async with calliope.open(root):
            pass
    message = str(raised.value)
    assert str(meta) in message
    assert json.dumps(kept) in message  # what to write back, whole
    assert f"replica_id={default!r}" in message
    meta.write_text(json.dumps(kept))  # following the advice
    async with calliope.open(root) as app:
        assert app.replica_id == default
