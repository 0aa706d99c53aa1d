"""I/O faults: a full disk (ENOSPC) or a failing device (EIO) on a write or a sync.

The file store writes and syncs through a ``Disk`` (calliope/adapters/files/
disk.py); here one whose calls fail as planned, or at random. What must hold:
a failed persist or snapshot save is a StorageError saying what to do, never
a raw OSError; nothing it half-wrote is visible; nothing acknowledged is
lost; after a failed write the next persist works once the fault clears;
after a failed sync the log refuses writes until the app is reopened.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import logging
import os
import random
import stat
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

import calliope
from calliope.adapters.codec import Codec
from calliope.adapters.files.batch_format import SEAL
from calliope.adapters.files.disk import OS_DISK, Disk
from calliope.adapters.files.framing import SEGMENT_HEADER
from calliope.adapters.files.layout import id_digest
from calliope.adapters.files.store import FileStore
from tests.integration.events import Cart, CartEvent, ItemAdded

CODES = [errno.ENOSPC, errno.EIO]
ADVICE = {errno.ENOSPC: "free space", errno.EIO: "I/O error"}
REOPEN = "close the app and open it again"
CALLS = ("pwrite", "pwritev", "write", "fdatasync", "fsync", "ftruncate")


@attrs.frozen
class Plan:
    """A planned fault: raise OSError(code) ``times`` times (None: until
    cleared) on the calls ``when`` accepts (None: any); ``short``: a write
    first writes half its data (and the next call fails), as a filling disk
    does."""

    code: int
    times: int | None = 1
    short: bool = False
    when: Callable[..., bool] | None = None


class FaultyDisk:
    """Builds a :class:`Disk` whose calls fail as planned (``fail``) or at
    random (``rate``), and counts the calls made and the faults injected.
    Thread-safe: the writers call it from worker threads."""

    def __init__(self, rng: random.Random | None = None, rate: float = 0.0) -> None:
        self.rng = rng
        self.rate = rate
        self.planned: dict[str, Plan] = {}
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.last_pwrite: dict[int, bytes] = {}  # fd -> what its last pwrite wrote, if short
        self._lock = threading.Lock()

    def fail(self, call: str, plan: Plan) -> None:
        self.planned[call] = plan

    def clear(self) -> None:
        self.planned.clear()
        self.rate = 0.0

    def disk(self) -> Disk:
        return Disk(**{call: self._wrap(call, getattr(OS_DISK, call)) for call in CALLS})

    def _fault(self, call: str, args: tuple[Any, ...]) -> int | None:
        """The errno to fail this call with, -1 for a short write, or None."""
        with self._lock:
            self.calls[call] += 1
            if call == "pwrite":
                data = args[1]
                self.last_pwrite[args[0]] = bytes(data) if len(data) <= 64 else b""
            plan = self.planned.get(call)
            if plan is not None and plan.when is not None and not plan.when(*args):
                return None
            if (
                plan is None
                and self.rng is not None
                and call != "ftruncate"
                and self.rng.random() < self.rate
            ):
                short = call == "pwrite" and self.rng.random() < 0.5
                plan = Plan(self.rng.choice(CODES), short=short)
            if plan is None:
                return None
            if plan.short and call in ("pwrite", "write") and len(args[1]) > 1:
                self.planned[call] = attrs.evolve(plan, short=False)  # the next one fails
                self.injected["short pwrite"] += 1
                return -1
            if plan.times is None:
                self.planned[call] = plan
            elif plan.times > 1:
                self.planned[call] = attrs.evolve(plan, times=plan.times - 1)
            else:
                self.planned.pop(call, None)
            self.injected[call] += 1
            return plan.code

    def _wrap(self, call: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(*args: Any) -> Any:
            code = self._fault(call, args)
            if code is None:
                return real(*args)
            if code == -1:
                fd, data, *offset = args
                return real(fd, data[: len(data) // 2], *offset)
            raise OSError(code, os.strerror(code))

        return faulty


def open_app(
    root: Path, disk: Disk = OS_DISK, *, replica_id: str = "a", segment_bytes: int = 64 << 20
) -> calliope.App:
    store = FileStore(
        root,
        replica_id=replica_id,
        durability="fsync",
        segment_bytes=segment_bytes,
        poll_interval=0.01,
        disk=disk,
    )
    return calliope.App(store, Codec(), target=str(root))


async def events_of(app: calliope.App, stream_id: str) -> list[tuple[int, CartEvent]]:
    """(sequence, event) of a plain stream, in order."""
    stream = app.journal.event_stream(stream_id, CartEvent)
    return [(envelope.sequence, envelope.event) async for envelope in stream.query()]


async def replica_events_of(app: calliope.App, stream_id: str) -> list[tuple[int, CartEvent]]:
    """(sequence, event) of replica ``a``'s events in the replicated stream
    beside the plain ``stream_id`` (one id is one kind of stream)."""
    stream = app.journal.replicated_event_stream(f"shared-{stream_id}", CartEvent)
    return sorted(
        [
            (envelope.sequence, envelope.event)
            async for envelope in stream.query()
            if envelope.replica_id == "a"
        ]
    )


Persist = Callable[[calliope.App, list[ItemAdded]], Any]


async def persist_one(app: calliope.App, events: list[ItemAdded]) -> list[int]:
    stream = app.journal.event_stream("cart", CartEvent)
    return [(await stream.persist(event)).sequence for event in events]


async def persist_all(app: calliope.App, events: list[ItemAdded]) -> list[int]:
    stream = app.journal.event_stream("cart", CartEvent)
    return [envelope.sequence for envelope in await stream.persist_all(events)]


async def persist_replicated(app: calliope.App, events: list[ItemAdded]) -> list[int]:
    stream = app.journal.replicated_event_stream("shared-cart", CartEvent)
    return [(await stream.persist(event)).envelope.sequence for event in events]


KINDS: dict[str, tuple[Persist, Callable[[calliope.App, str], Any]]] = {
    "persist": (persist_one, events_of),
    "persist_all": (persist_all, events_of),
    "replicated": (persist_replicated, replica_events_of),
}


def items(*names: str) -> list[ItemAdded]:
    return [ItemAdded(name) for name in names]


def numbered(events: Sequence[CartEvent], first: int = 1) -> list[tuple[int, CartEvent]]:
    return list(enumerate(events, first))


@pytest.mark.parametrize("code", CODES, ids=errno.errorcode.get)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_failed_write_is_a_storage_error_that_leaves_nothing_and_clears(
    tmp_path: Path, kind: str, code: int
) -> None:
    persist, read = KINDS[kind]
    faults = FaultyDisk()
    first, lost, later = items("a", "b"), items("c", "d"), items("e")
    async with open_app(tmp_path, faults.disk()) as app:
        await persist(app, first)
        faults.fail("pwrite", Plan(code, short=True))  # half a frame written, then the error
        with pytest.raises(calliope.StorageError) as raised:
            await persist(app, lost)
        assert ADVICE[code] in str(raised.value)
        assert not isinstance(raised.value, OSError)
        assert faults.injected["pwrite"] == 1
        assert await read(app, "cart") == numbered(first)
        faults.clear()
        assert await persist(app, later) == [3]
        assert await read(app, "cart") == numbered(first + later)
    async with open_app(tmp_path) as app:  # and on disk, no torn frame between them
        assert await read(app, "cart") == numbered(first + later)


@pytest.mark.parametrize("code", CODES, ids=errno.errorcode.get)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_failed_sync_refuses_writes_until_the_app_is_reopened(
    tmp_path: Path, kind: str, code: int
) -> None:
    persist, read = KINDS[kind]
    faults = FaultyDisk()
    first, lost = items("a", "b"), items("c")
    async with open_app(tmp_path, faults.disk()) as app:
        await persist(app, first)
        faults.fail("fdatasync", Plan(code))  # the next sync fails, later ones would not
        with pytest.raises(calliope.StorageError) as raised:
            await persist(app, lost)
        assert ADVICE[code] in str(raised.value) and REOPEN in str(raised.value)
        syncs = faults.calls["fdatasync"]
        for _ in range(2):  # refused, and never retried into a false success
            with pytest.raises(calliope.StorageError, match=REOPEN):
                await persist(app, items("x"))
        for n in range(200):  # past the handles an app keeps: the failed one's is dropped
            await app.journal.event_stream(f"other-{n}", CartEvent).last_sequence()
        with pytest.raises(calliope.StorageError, match=REOPEN):  # still refused
            await persist(app, items("x"))
        assert faults.calls["fdatasync"] == syncs
        assert await read(app, "cart") == numbered(first)  # the unsynced frame was cut
        if kind != "replicated":
            stream = app.journal.event_stream("cart", CartEvent)
            assert await stream.last_sequence() == 2
    async with open_app(tmp_path, faults.disk()) as app:  # reopened: the tail re-learnt
        assert await read(app, "cart") == numbered(first)
        assert await persist(app, items("d")) == [3]
        assert await read(app, "cart") == numbered(first + items("d"))


@pytest.mark.parametrize("kind", ["persist", "replicated"])
async def test_every_caller_of_a_group_whose_sync_failed_gets_a_storage_error(
    tmp_path: Path, kind: str
) -> None:
    persist, read = KINDS[kind]
    faults = FaultyDisk()
    async with open_app(tmp_path, faults.disk()) as app:
        await persist(app, items("first"))
        faults.fail("fdatasync", Plan(errno.EIO))
        syncs = faults.calls["fdatasync"]
        results = await asyncio.gather(
            *(persist(app, items(f"e{n}")) for n in range(32)), return_exceptions=True
        )
        assert all(isinstance(result, calliope.StorageError) for result in results), results
        assert faults.calls["fdatasync"] == syncs + 1  # one group, one failed sync, no retry
        assert await read(app, "cart") == numbered(items("first"))
    async with open_app(tmp_path) as app:
        assert await read(app, "cart") == numbered(items("first"))


def is_directory(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


class Roll:
    """Recognises the calls of a roll to a new segment: writing the seal,
    syncing it, writing the new segment's header, syncing it and its
    directory."""

    def __init__(self, faults: FaultyDisk) -> None:
        self.faults = faults

    @staticmethod
    def seal_write(fd: int, data: bytes, offset: int) -> bool:
        return bytes(data) == SEAL

    def seal_sync(self, fd: int) -> bool:
        return self.faults.last_pwrite.get(fd) == SEAL

    @staticmethod
    def header_write(fd: int, data: bytes, offset: int) -> bool:
        return bytes(data) == SEGMENT_HEADER

    @staticmethod
    def header_sync(fd: int) -> bool:
        return not is_directory(fd)

    @staticmethod
    def directory_sync(fd: int) -> bool:
        return is_directory(fd)


ROLL_FAULTS = {
    "seal write": ("pwrite", "seal_write"),
    "seal sync": ("fdatasync", "seal_sync"),
    "header write": ("pwrite", "header_write"),
    "header sync": ("fsync", "header_sync"),
    "directory sync": ("fsync", "directory_sync"),
}


@pytest.mark.parametrize("code", CODES, ids=errno.errorcode.get)
@pytest.mark.parametrize("fault", ROLL_FAULTS)
async def test_a_fault_while_rolling_to_a_new_segment_loses_nothing(
    tmp_path: Path, fault: str, code: int
) -> None:
    """Small segments; the first roll fails (once). A failed write lets
    the next persist roll; a failed sync refuses until reopened."""
    call, which = ROLL_FAULTS[fault]
    is_sync = call != "pwrite"
    faults = FaultyDisk()
    faults.fail(call, Plan(code, when=getattr(Roll(faults), which)))
    acknowledged: list[ItemAdded] = []
    async with open_app(tmp_path, faults.disk(), segment_bytes=4096) as app:
        stream = app.journal.event_stream("cart", CartEvent)
        for n in range(120):  # about three segments
            event = ItemAdded(f"sku-{n:03d}-" + "x" * 60)
            try:
                await stream.persist(event)
            except calliope.StorageError as error:
                assert ADVICE[code] in str(error)
                assert (REOPEN in str(error)) == is_sync
                if is_sync:
                    break
            else:
                acknowledged.append(event)
        assert faults.injected[call] == 1
        assert await events_of(app, "cart") == numbered(acknowledged)
        assert await stream.last_sequence() == len(acknowledged)
        if is_sync:
            with pytest.raises(calliope.StorageError, match=REOPEN):
                await stream.persist(ItemAdded("refused"))
        else:
            assert len(acknowledged) == 119
    async with open_app(tmp_path) as app:
        assert await events_of(app, "cart") == numbered(acknowledged)
        stream = app.journal.event_stream("cart", CartEvent)
        later = await stream.persist(ItemAdded("later"))
        assert later.sequence == len(acknowledged) + 1


def snapshot_names(root: Path, snapshot_id: str) -> list[str]:
    digest = id_digest(snapshot_id)
    return sorted(os.listdir(root / "snapshots" / digest[:2] / digest))


@pytest.mark.parametrize("code", CODES, ids=errno.errorcode.get)
@pytest.mark.parametrize(
    "fault",
    ["write", "short write", "file sync", "directory sync"],
)
async def test_a_failed_snapshot_save_is_a_storage_error_and_leaves_the_previous(
    tmp_path: Path, fault: str, code: int
) -> None:
    """The new file is never in view (nor a temp file left); the previous
    snapshot loads; the next save works."""
    faults = FaultyDisk()
    plans = {
        "write": ("write", Plan(code)),
        "short write": ("write", Plan(code, short=True)),
        "file sync": ("fsync", Plan(code, when=lambda fd: not is_directory(fd))),
        "directory sync": ("fsync", Plan(code, when=is_directory)),  # after the rename
    }
    async with open_app(tmp_path, faults.disk()) as app:
        await app.snapshots.save_snapshot("cart", Cart({"a": 1}), sequence=1)
        before = snapshot_names(tmp_path, "cart")
        call, plan = plans[fault]
        faults.fail(call, plan)
        big = Cart({f"sku-{n}": n for n in range(500)})
        with pytest.raises(calliope.StorageError) as raised:
            await app.snapshots.save_snapshot("cart", big, sequence=2)
        assert ADVICE[code] in str(raised.value)
        assert faults.injected[call] == 1
        assert snapshot_names(tmp_path, "cart") == before
        loaded = await app.snapshots.load_snapshot("cart", Cart)
        assert loaded is not None and (loaded.sequence, loaded.state) == (1, Cart({"a": 1}))
        await app.snapshots.save_snapshot("cart", big, sequence=3)  # the fault cleared
        loaded = await app.snapshots.load_snapshot("cart", Cart)
        assert loaded is not None and (loaded.sequence, loaded.state) == (3, big)


async def test_a_failed_index_write_is_logged_not_a_failed_persist(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sparse index is a hint written after the batch is durable."""
    faults = FaultyDisk()
    events = [ItemAdded(f"sku-{n}-" + "x" * 2000) for n in range(80)]  # past 64 KiB: indexed
    async with open_app(tmp_path, faults.disk()) as app:
        stream = app.journal.event_stream("cart", CartEvent)
        faults.fail("write", Plan(errno.ENOSPC, times=None))
        with caplog.at_level(logging.WARNING, logger="calliope.files"):
            for event in events:
                await stream.persist(event)
        assert faults.injected["write"] >= 1
        assert "could not extend the index" in caplog.text
        assert await events_of(app, "cart") == numbered(events)


async def test_random_faults_in_concurrent_persists_lose_nothing(tmp_path: Path) -> None:
    """Seeded runs: rounds of concurrent persists (plain, persist_all,
    replicated) and snapshot saves on a disk whose calls fail at random
    (ENOSPC or EIO, writes sometimes short first), with small segments so
    that seals and new segments fail too. After each round, and after
    reopening, queries, ``last_sequence`` and the newest snapshot agree
    with exactly what was acknowledged; a later persist continues the
    sequence. Every failure is a StorageError."""
    totals: Counter[str] = Counter()
    for seed in range(12):
        run = Run(tmp_path / f"run-{seed}", FaultyDisk(random.Random(seed), rate=0.15))
        rng = random.Random(seed)
        app = await run.open()
        try:
            for round_number in range(8):
                operations = [
                    run.operation(app, rng, f"{seed}-{round_number}-{n}")
                    for n in range(rng.randint(1, 12))
                ]
                results = await asyncio.gather(*operations, return_exceptions=True)
                failures = [result for result in results if isinstance(result, BaseException)]
                assert all(isinstance(error, calliope.StorageError) for error in failures), failures
                totals["operations"] += len(results)
                totals["failed operations"] += len(failures)
                run.faults.rate = 0.0  # check (and reopen) on a healthy disk
                await run.check(app)
                if failures:  # a failed sync refuses until reopened
                    await app.aclose()
                    app = await run.open()
                    totals["reopens"] += 1
                    await run.check(app)
                run.faults.rate = 0.15
            run.faults.clear()
            later = await app.journal.event_stream("cart", CartEvent).persist(ItemAdded("later"))
            assert later.sequence == len(run.plain) + 1
            run.plain.append((later.sequence, ItemAdded("later")))
        finally:
            await app.aclose()
        async with open_app(run.root) as app:
            await run.check(app)
        totals["events acknowledged"] += len(run.plain) + len(run.replicated)
        totals["faults injected"] += sum(
            count for call, count in run.faults.injected.items() if call != "short pwrite"
        )
        totals["short writes"] += run.faults.injected["short pwrite"]
        totals["disk calls"] += sum(run.faults.calls.values())
    print(f"\nrandom I/O faults: {dict(totals)}; acknowledged events lost: 0")
    assert totals["faults injected"] >= 50 and totals["events acknowledged"] >= 100


class Run:
    """One seeded run: its directory, faulty disk, and what was acknowledged."""

    def __init__(self, root: Path, faults: FaultyDisk) -> None:
        self.root = root
        self.faults = faults
        self.plain: list[tuple[int, CartEvent]] = []  # (sequence, event) acknowledged
        self.replicated: list[tuple[int, CartEvent]] = []
        self.snapshots: list[tuple[int, datetime.datetime, Cart]] = []  # saved

    async def open(self) -> calliope.App:
        app = open_app(self.root, self.faults.disk(), segment_bytes=4096)
        await app.__aenter__()
        return app

    async def operation(self, app: calliope.App, rng: random.Random, name: str) -> None:
        """One random operation; what it acknowledged is recorded."""
        kind = rng.choice(["persist", "persist_all", "replicated", "snapshot"])
        if kind == "snapshot":
            state = Cart({name: 1})
            saved = await app.snapshots.save_snapshot("cart", state, sequence=len(self.plain))
            self.snapshots.append((saved.sequence, saved.timestamp, state))
            return
        events = [ItemAdded(f"{name}-{k}", rng.randint(1, 9)) for k in range(rng.randint(1, 4))]
        if kind == "persist_all":
            stream = app.journal.event_stream("cart", CartEvent)
            for envelope in await stream.persist_all(events):
                self.plain.append((envelope.sequence, envelope.event))
        elif kind == "persist":
            stream = app.journal.event_stream("cart", CartEvent)
            envelope = await stream.persist(events[0])
            self.plain.append((envelope.sequence, envelope.event))
        else:
            shared = app.journal.replicated_event_stream("shared-cart", CartEvent)
            reply = await shared.persist(events[0])
            self.replicated.append((reply.envelope.sequence, reply.envelope.event))

    async def check(self, app: calliope.App) -> None:
        """Queries, last_sequence and the newest snapshot agree with what
        was acknowledged: nothing lost, nothing unacknowledged, no gap."""
        self.plain.sort(key=lambda acknowledged: acknowledged[0])
        self.replicated.sort(key=lambda acknowledged: acknowledged[0])
        assert await events_of(app, "cart") == numbered([event for _, event in self.plain])
        assert await replica_events_of(app, "cart") == numbered(
            [event for _, event in self.replicated]
        )
        stream = app.journal.event_stream("cart", CartEvent)
        assert await stream.last_sequence() == len(self.plain)
        loaded = await app.snapshots.load_snapshot("cart", Cart)
        if not self.snapshots:
            assert loaded is None
        else:
            newest = max(self.snapshots, key=lambda saved: saved[:2])
            assert loaded is not None
            assert (loaded.sequence, loaded.timestamp, loaded.state) == newest


async def test_a_reader_never_delivers_a_frame_whose_fsync_then_fails(tmp_path: Path) -> None:
    """Readers deliver only what the committed extent covers, recorded after
    the fsync: a query running while the writer waits for its fsync does not
    see the frame, so it never delivers an event that then vanishes."""
    in_sync, go_on = threading.Event(), threading.Event()

    def slow_failing_fdatasync(fd: int) -> None:
        in_sync.set()
        go_on.wait(timeout=30)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    healthy = tmp_path / "healthy"
    async with open_app(healthy) as app:  # the first event, with a healthy disk
        await app.journal.event_stream("cart", CartEvent).persist(ItemAdded("kept"))
    disk = attrs.evolve(OS_DISK, fdatasync=slow_failing_fdatasync)
    async with open_app(healthy, disk) as writer, open_app(healthy, replica_id="b") as reader:
        writing = asyncio.ensure_future(
            writer.journal.event_stream("cart", CartEvent).persist(ItemAdded("unsynced"))
        )
        await asyncio.to_thread(in_sync.wait, 30)  # written, its fsync under way
        seen = await events_of(reader, "cart")
        go_on.set()
        with pytest.raises(calliope.StorageError):
            await writing
        assert seen == numbered(items("kept"))
        assert await events_of(reader, "cart") == numbered(items("kept"))
