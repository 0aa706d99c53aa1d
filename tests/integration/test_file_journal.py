"""File adapter specifics: processes, crashes, torn tails, damage, layout."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import calliope
from calliope.adapters.files.layout import id_digest
from tests.integration.events import Cart, ItemAdded

ROOT = Path(__file__).resolve().parents[2]


def worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def log_dir(root: Path, stream_id: str) -> Path:
    digest = id_digest(stream_id)
    return root / "streams" / digest[:2] / digest / "log"


def segments(root: Path, stream_id: str) -> list[Path]:
    return sorted(log_dir(root, stream_id).glob("*.seg"))


def lock_file(root: Path, stream_id: str) -> Path:
    """The log's lock file, which holds its committed extent."""
    return log_dir(root, stream_id) / "lock"


async def read_all(root: Path, stream_id: str) -> list[calliope.Envelope[ItemAdded]]:
    async with calliope.open(root, replica_id="reader") as app:
        return await app.journal.event_stream(stream_id, ItemAdded).query().to_list()


async def test_four_processes_append_one_contiguous_stream(tmp_path: Path) -> None:
    root = tmp_path / "data"
    processes = [worker("persist", str(root), f"p{n}", "shared", "1000") for n in range(4)]
    for process in processes:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    envelopes = await read_all(root, "shared")
    assert [e.sequence for e in envelopes] == list(range(1, 4001))
    skus = [e.event.sku for e in envelopes]
    assert sorted(skus) == sorted(f"p{p}-{n}" for p in range(4) for n in range(1000))
    for p in range(4):  # each process's own events stay in its order
        mine = [int(s.split("-")[1]) for s in skus if s.startswith(f"p{p}-")]
        assert mine == list(range(1000))
    last = envelopes[-1].version
    assert last == calliope.VersionVector({f"p{n}": 1000 for n in range(4)})


async def test_sigkill_during_group_commit_loses_no_acknowledged_event(tmp_path: Path) -> None:
    root = tmp_path / "data"
    process = worker("hammer", str(root), "w", "crash", "64")
    acknowledged: dict[str, int] = {}
    assert process.stdout is not None
    while len(acknowledged) < 3000:
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "worker died"
        sku, count = line.split()
        acknowledged[sku] = int(count)
    process.send_signal(signal.SIGKILL)
    rest, _ = process.communicate(timeout=30)
    for line in rest.splitlines():  # acknowledged before the kill landed
        sku, count = line.split()
        acknowledged[sku] = int(count)

    envelopes = await read_all(root, "crash")
    assert [e.sequence for e in envelopes] == list(range(1, len(envelopes) + 1))
    stored: dict[str, list[int]] = {}
    for envelope in envelopes:
        stored.setdefault(envelope.event.sku, []).append(envelope.event.quantity)
    for sku in acknowledged:
        assert sku in stored, f"acknowledged {sku} is missing"
    for sku, quantities in stored.items():  # every batch whole, none twice
        expected = [1, 2] if int(sku.split("-")[1]) % 3 == 2 else [1]
        assert quantities == expected, (sku, quantities)
    # The store stays writable and continues the sequence.
    async with calliope.open(root, replica_id="w") as app:
        envelope = await app.journal.event_stream("crash", ItemAdded).persist(ItemAdded("after"))
    assert envelope.sequence == len(envelopes) + 1


async def write(root: Path, stream_id: str, count: int, **options: object) -> None:
    async with calliope.open(root, replica_id="writer", **options) as app:  # type: ignore[arg-type]
        stream = app.journal.event_stream(stream_id, ItemAdded)
        for n in range(count):
            await stream.persist(ItemAdded(str(n)))


async def test_a_torn_tail_is_moved_aside_and_writing_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    await write(root, "s", 5)
    (segment,) = segments(root, "s")
    intact = segment.stat().st_size
    frame = segment.read_bytes()[-40:]
    torn = frame[: len(frame) // 2]
    with segment.open("ab") as handle:
        handle.write(torn)  # half a frame: a write torn by a crash
    with caplog.at_level(logging.WARNING, logger="calliope.files"):
        assert [e.sequence for e in await read_all(root, "s")] == [1, 2, 3, 4, 5]
        async with calliope.open(root, replica_id="writer") as app:
            stream = app.journal.event_stream("s", ItemAdded)
            envelope = await stream.persist(ItemAdded("after"))
    assert envelope.sequence == 6
    assert f"moved {len(torn)} bytes at byte offset {intact}" in caplog.text
    (aside,) = segment.parent.glob("*.aside")
    assert aside.read_bytes() == torn  # moved, never deleted
    assert [e.event.sku for e in await read_all(root, "s")] == ["0", "1", "2", "3", "4", "after"]
    assert segment.stat().st_size > intact


async def test_a_torn_batch_is_never_partly_visible(tmp_path: Path) -> None:
    root = tmp_path / "data"
    async with calliope.open(root, replica_id="writer") as app:
        stream = app.journal.event_stream("s", ItemAdded)
        await stream.persist(ItemAdded("single"))
        size_before_batch = segments(root, "s")[0].stat().st_size
        extent_before_batch = lock_file(root, "s").read_bytes()
        await stream.persist_all([ItemAdded("a"), ItemAdded("b"), ItemAdded("c")])
    (segment,) = segments(root, "s")
    data = segment.read_bytes()
    for cut in (size_before_batch + 5, (size_before_batch + len(data)) // 2, len(data) - 1):
        # The batch's write torn at various points by a crash, so before the
        # writer recorded its committed extent (extent.py).
        segment.write_bytes(data[:cut])
        lock_file(root, "s").write_bytes(extent_before_batch)
        assert [e.event.sku for e in await read_all(root, "s")] == ["single"]
    async with calliope.open(root, replica_id="writer") as app:
        await app.journal.event_stream("s", ItemAdded).persist(ItemAdded("next"))
    assert [(e.sequence, e.event.sku) for e in await read_all(root, "s")] == [
        (1, "single"),
        (2, "next"),
    ]


async def test_a_flipped_byte_before_the_tail_is_an_error_naming_file_and_offset(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    await write(root, "s", 10)
    (segment,) = segments(root, "s")
    data = bytearray(segment.read_bytes())
    position = len(data) // 2
    data[position] ^= 0x40
    segment.write_bytes(bytes(data))
    with pytest.raises(calliope.CorruptJournalError) as caught:
        await read_all(root, "s")
    assert caught.value.path == str(segment)
    assert 16 <= caught.value.offset <= position
    assert str(segment) in str(caught.value) and str(caught.value.offset) in str(caught.value)
    with pytest.raises(calliope.CorruptJournalError):  # and writers refuse too
        await write(root, "s", 1)
    assert segment.read_bytes() == bytes(data)  # nothing was cut or repaired


async def test_a_flipped_length_byte_is_damage_not_a_torn_tail(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 10)
    (segment,) = segments(root, "s")
    data = bytearray(segment.read_bytes())
    data[16 + 5] ^= 0x10  # the first frame's length: it now runs past the end
    segment.write_bytes(bytes(data))
    with pytest.raises(calliope.CorruptJournalError):
        await read_all(root, "s")
    with pytest.raises(calliope.CorruptJournalError):
        await write(root, "s", 1)


async def test_segments_roll_and_the_sparse_index_finds_a_sequence(tmp_path: Path) -> None:
    root = tmp_path / "data"
    async with calliope.open(root, replica_id="w", segment_bytes=64 * 1024) as app:
        stream = app.journal.event_stream("s", ItemAdded)
        for start in range(0, 20_000, 1000):
            await stream.persist_all([ItemAdded(f"{n:08d}") for n in range(start, start + 1000)])
    files = segments(root, "s")
    assert len(files) > 3
    assert int(files[0].stem) == 1
    async with calliope.open(root, replica_id="r") as app:
        stream = app.journal.event_stream("s", ItemAdded)
        middle = await stream.query(12_345, 12_350).to_list()
        everything = await stream.query().to_list()
        assert await stream.last_sequence() == 20_000
    assert [e.event.sku for e in middle] == [f"{n:08d}" for n in range(12_344, 12_350)]
    assert [e.sequence for e in everything] == list(range(1, 20_001))


async def test_the_index_lets_a_query_start_near_its_sequence(tmp_path: Path) -> None:
    root = tmp_path / "data"
    async with calliope.open(root, replica_id="w") as app:
        stream = app.journal.event_stream("s", ItemAdded)
        for start in range(0, 10_000, 500):
            await stream.persist_all([ItemAdded(f"{n:08d}") for n in range(start, start + 500)])
    from calliope.adapters.files.segment_log import SegmentLog

    log = SegmentLog(
        str(log_dir(root, "s")), stream_id="s", durability="fsync", segment_bytes=1 << 30
    )
    position = log.locate(9_000)
    assert position is not None and position.offset > 64 * 1024
    # A damaged index is only a hint: the query still finds the right events.
    index = next(log_dir(root, "s").glob("*.idx"))
    index.write_bytes(
        index.read_bytes()[:-16] + (9_500).to_bytes(8, "little") + (17).to_bytes(8, "little")
    )
    async with calliope.open(root, replica_id="r") as app:
        found = await app.journal.event_stream("s", ItemAdded).query(9_600, 9_602).to_list()
    assert [e.sequence for e in found] == [9_600, 9_601, 9_602]


async def test_live_query_sees_events_from_another_process(tmp_path: Path) -> None:
    root = tmp_path / "data"
    follower = worker("follow", str(root), "follower", "feed", "50")
    assert follower.stdout is not None
    assert follower.stdout.readline().strip() == "ready"
    await write(root, "feed", 50)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out.split() == [str(n) for n in range(50)]


async def test_files_and_directories_are_private(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write(root, "s", 1)
    async with calliope.open(root, replica_id="writer") as app:
        await app.snapshots.save_snapshot("s", Cart({"a": 1}), sequence=1)
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = 0o700 if path.is_dir() else 0o600
        assert mode & ~expected == 0, f"{path} has mode {oct(mode)}"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


async def test_a_second_process_with_the_same_replica_id_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    async with calliope.open(root, replica_id="taken"):
        process = worker("persist", str(root), "taken", "s", "1")
        _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "ReplicaInUseError" in err and "taken" in err


async def test_a_damaged_newest_snapshot_falls_back_to_the_previous(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    async with calliope.open(root, replica_id="w") as app:
        for sequence in (1, 2, 3, 4):
            await app.snapshots.save_snapshot("cart", Cart({"n": sequence}), sequence=sequence)
    digest = id_digest("cart")
    files = sorted((root / "snapshots" / digest[:2] / digest).glob("*.snap"))
    assert len(files) == 3  # the newest three are kept
    newest = bytearray(files[-1].read_bytes())
    newest[-3] ^= 0xFF
    files[-1].write_bytes(bytes(newest))
    with caplog.at_level(logging.WARNING, logger="calliope.files"):
        async with calliope.open(root, replica_id="w") as app:
            snapshot = await app.snapshots.load_snapshot("cart", Cart)
    assert snapshot is not None and snapshot.sequence == 3 and snapshot.state == Cart({"n": 3})
    assert "damaged" in caplog.text
    for path in files:
        path.write_bytes(b"garbage")
    async with calliope.open(root, replica_id="w") as app:
        assert await app.snapshots.load_snapshot("cart", Cart) is None


async def test_a_snapshot_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    root = tmp_path / "data"
    async with calliope.open(root, replica_id="w") as app:
        await app.snapshots.save_snapshot("cart", Cart(), sequence=0)
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


async def test_writing_many_streams_keeps_few_files_open(tmp_path: Path) -> None:
    from calliope.adapters.files.event_log import _HANDLES

    root = tmp_path / "data"
    fds = Path("/proc/self/fd")
    streams = _HANDLES + 300
    async with calliope.open(root, replica_id="w", durability="flush") as app:
        before = len(list(fds.iterdir()))
        for n in range(streams):
            await app.journal.event_stream(f"s{n}", ItemAdded).persist(ItemAdded(str(n)))
        during = len(list(fds.iterdir()))
        for n in (0, streams - 1):  # an evicted log reopens and continues its sequence
            envelope = await app.journal.event_stream(f"s{n}", ItemAdded).persist(
                ItemAdded("again")
            )
            assert envelope.sequence == 2
    assert during - before <= 2 * _HANDLES + 8


async def test_a_path_that_cannot_be_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(calliope.StorageError, match=r"cannot use .* as a Calliope data directory"):
        async with calliope.open(blocker / "data"):
            pass


async def test_a_reader_waits_at_a_seal_until_the_next_segment_exists(tmp_path: Path) -> None:
    from calliope.adapters.files.batch_format import SEAL

    root = tmp_path / "data"
    await write(root, "s", 3)
    (segment,) = segments(root, "s")
    with segment.open("ab") as handle:
        handle.write(SEAL)  # sealed, then the roller died before the next segment
    async with calliope.open(root, replica_id="writer") as app:
        stream = app.journal.event_stream("s", ItemAdded)
        assert await stream.query(from_sequence=4).to_list() == []
        async with stream.live_query(from_sequence=2) as live:
            assert (await anext(live)).sequence == 2
            assert (await anext(live)).sequence == 3
            for n in range(3, 6):
                await stream.persist(ItemAdded(str(n)))
            rest = [(await asyncio.wait_for(anext(live), 5)).sequence for _ in range(3)]
        assert rest == [4, 5, 6]
        assert [e.sequence for e in await stream.query(from_sequence=4).to_list()] == [4, 5, 6]
    assert len(segments(root, "s")) == 2


async def test_damage_at_the_end_of_an_earlier_segment_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    async with calliope.open(root, replica_id="w", segment_bytes=4096) as app:
        stream = app.journal.event_stream("s", ItemAdded)
        for n in range(200):
            await stream.persist(ItemAdded(f"{n:04d}" * 4))
    first = segments(root, "s")[0]
    assert len(segments(root, "s")) > 2
    data = bytearray(first.read_bytes())
    data[-3] ^= 0xFF  # the seal
    first.write_bytes(bytes(data))
    with pytest.raises(calliope.CorruptJournalError, match="damaged at byte offset"):
        await read_all(root, "s")


async def test_conflicting_persists_on_many_streams_keep_few_files_open(tmp_path: Path) -> None:
    from calliope.adapters.files.event_log import _HANDLES

    fds = Path("/proc/self/fd")
    async with calliope.open(tmp_path / "data", replica_id="w", durability="flush") as app:
        before = len(list(fds.iterdir()))
        for n in range(_HANDLES + 300):
            with pytest.raises(calliope.ConcurrencyError):
                await app.journal.event_stream(f"s{n}", ItemAdded).persist(
                    ItemAdded("x"), expected_sequence=5
                )
        assert len(list(fds.iterdir())) - before <= 2 * _HANDLES + 8


async def test_a_failing_index_write_does_not_fail_a_durable_persist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:

    real_open = os.open

    def no_space_for_indexes(path: str, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".idx") and flags & os.O_WRONLY:
            raise OSError(28, "No space left on device")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_space_for_indexes)
    with caplog.at_level(logging.WARNING, logger="calliope.files"):
        async with calliope.open(tmp_path / "data", replica_id="w", durability="flush") as app:
            stream = app.journal.event_stream("s", ItemAdded)
            for _ in range(15):
                await stream.persist_all([ItemAdded("x" * 100)] * 100)
            assert await stream.last_sequence() == 1500
    assert "could not extend the index" in caplog.text
