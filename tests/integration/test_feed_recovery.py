"""The file store's feed after crashes: a writer dying mid-write, a reboot
that lost the index's unsynced end, a damaged index."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

import calliope
from calliope.adapters.files.feed_index import ENTRY_SIZE, FeedIndex, log_digests
from calliope.adapters.files.layout import log_directory
from tests.integration.events import ItemAdded

_ROOT = Path(__file__).resolve().parents[2]


async def _feed(directory: str) -> list[tuple[str, str, str]]:
    async with calliope.open(directory, replica_id="reader") as app:
        return [
            (e.stream_id, e.event.sku, str(e.position))
            async for e in app.journal.feed(ItemAdded).query()
        ]


def _run_dying_writer(directory: str, where: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.feed_crash_worker", directory, where],
        env=env,
        cwd=_ROOT,
        timeout=60,
    )
    assert done.returncode == 7


@pytest.mark.parametrize("where", ["pwrite", "fdatasync"])
async def test_a_writer_dying_mid_write_neither_stalls_nor_duplicates_the_feed(
    tmp_path: Path, where: str
) -> None:
    """Died before its frame was written: its entry is passed over. Died
    after writing, before the sync: the intact frame is committed by the
    next reader, and delivered once. Either way a later write follows."""
    directory = str(tmp_path / "store")
    _run_dying_writer(directory, where)
    skus = [sku for _, sku, _ in await _feed(directory)]
    expected = ["ok-0", "ok-1", "ok-2"] + (["dies"] if where == "fdatasync" else [])
    assert skus == expected
    async with calliope.open(directory, replica_id="later", poll_interval=0.005) as app:
        feed = app.journal.feed(ItemAdded)
        async with feed.live_query() as live:
            for sku in expected:
                assert (await asyncio.wait_for(anext(live), 5)).event.sku == sku
            await app.journal.event_stream("cart-0", ItemAdded).persist(ItemAdded("after"))
            assert (await asyncio.wait_for(anext(live), 5)).event.sku == "after"
    assert [sku for _, sku, _ in await _feed(directory)] == [*expected, "after"]


async def _write_some(directory: str) -> list[tuple[str, str, str]]:
    async with calliope.open(directory, replica_id="w") as app:
        for n in range(12):
            await app.journal.event_stream(f"cart-{n % 4}", ItemAdded).persist(ItemAdded(f"p{n}"))
        rep = app.journal.replicated_event_stream("cart-r", ItemAdded)
        for n in range(3):
            await rep.persist(ItemAdded(f"r{n}"))
    return await _feed(directory)


def _pretend_rebooted(directory: str, durable: int, keep_bytes: int) -> None:
    """What a power loss may leave: the index synced up to entry
    ``durable``, its file cut (torn) after ``keep_bytes``, a new boot."""
    feed = os.path.join(directory, "feed")
    with open(os.path.join(feed, "synced"), "w", encoding="ascii") as handle:
        handle.write(f"an-earlier-boot {durable}\n")
    os.truncate(os.path.join(feed, "index"), keep_bytes)


@pytest.mark.parametrize("durable", [0, 4, 9])
async def test_after_a_reboot_the_index_is_restored_from_the_frames(
    tmp_path: Path, durable: int
) -> None:
    directory = str(tmp_path / "store")
    before = await _write_some(directory)
    _pretend_rebooted(directory, durable, durable * ENTRY_SIZE + 10)
    assert await _feed(directory) == before  # the same events at the same positions
    async with calliope.open(directory, replica_id="w") as app:
        await app.journal.event_stream("cart-9", ItemAdded).persist(ItemAdded("new"))
    after = await _feed(directory)
    assert after[:-1] == before and after[-1][1] == "new"
    assert int(after[-1][2].split(".")[0]) > int(before[-1][2].split(".")[0])


async def test_an_entry_whose_write_never_happened_becomes_void_after_a_reboot(
    tmp_path: Path,
) -> None:
    directory = str(tmp_path / "store")
    before = await _write_some(directory)
    index = FeedIndex(directory, read_only=False)
    index.open()
    stream, replica = log_digests(log_directory(directory, "cart-0", None))
    dangling = index.reserve(stream, replica, 100, 1)  # a write that died before writing
    index.close()
    assert await _feed(directory) == before  # passed over (its log's lock is free)
    with open(os.path.join(directory, "feed", "synced"), "w", encoding="ascii") as handle:
        handle.write(f"an-earlier-boot {dangling - 2}\n")
    assert await _feed(directory) == before
    async with calliope.open(directory, replica_id="w") as app:
        await app.journal.event_stream("cart-0", ItemAdded).persist(ItemAdded("next"))
    after = await _feed(directory)
    assert after[:-1] == before and after[-1][1] == "next"


async def test_a_damaged_index_entry_is_an_error_naming_the_file(tmp_path: Path) -> None:
    directory = str(tmp_path / "store")
    await _write_some(directory)
    path = os.path.join(directory, "feed", "index")
    with open(path, "r+b") as handle:
        handle.seek(ENTRY_SIZE * 2 + 40)
        handle.write(b"\xff\xff")
    async with calliope.open(directory, replica_id="reader") as app:
        with pytest.raises(calliope.CorruptJournalError, match="feed index") as raised:
            await app.journal.feed(ItemAdded).query().to_list()
        assert raised.value.path == path
        assert raised.value.offset == ENTRY_SIZE * 2


async def test_a_restore_looks_past_an_empty_last_segment(tmp_path: Path) -> None:
    """A full segment rolls at the next append, before its requests are
    checked: a refused append (or a writer dying there) leaves an empty
    last segment. The writes of the segment before it are still found."""
    directory = str(tmp_path / "store")
    async with calliope.open(directory, replica_id="w", segment_bytes=4096) as app:
        stream = app.journal.event_stream("cart-0", ItemAdded)
        log = Path(log_directory(directory, "cart-0", None))
        await stream.persist(ItemAdded("x"))
        while os.path.getsize(log / f"{1:020d}.seg") < 4096:
            await stream.persist(ItemAdded("x"))
        with pytest.raises(calliope.ConcurrencyError):
            await stream.persist(ItemAdded("refused"), expected_sequence=0)
    (empty,) = [s for s in log.glob("*.seg") if s.name != f"{1:020d}.seg"]
    assert empty.stat().st_size == 16  # a header, no frame
    before = await _feed(directory)
    _pretend_rebooted(directory, len(before) - 5, (len(before) - 5) * ENTRY_SIZE + 10)
    assert await _feed(directory) == before
