"""Responsiveness benchmark: event-loop stalls, and the CPU idle live queries burn.

Run: ``.venv/bin/python -m benchmarks.responsiveness [--quick]`` (or ``make bench``).

Loop stalls. A ticker task sleeps 1 ms in a loop and records how late each
wake-up is; each workload below runs beside it on the same event loop, and
the longest stall and the p99 lateness are printed beside the same ticker's
on an idle loop (the baseline, measured first in the same run). Target:
no stall over 20 ms. File store in a temp dir, durability "fsync".

(a) persist one event holding a 50 MB ``bytes`` field, then query it back;
(b) ``app.snapshots.save_snapshot`` of a state holding a 50 MB ``bytes``
    field, then ``load_snapshot``;
(c) this process persists to a plain stream, another process appends
    50,000 small events to it, then this process persists again (its
    writer catches up with the other's appends) and a live query here
    reads the stream from sequence 1 (the ticker runs for these two);
(d) the same on a replicated stream: the other process writes as another
    replica; this process persists (its reply covers what the other wrote)
    and runs a replicated live query from the start.

Idle live queries. In a fresh process, 100 live queries (each
``async with stream.live_query()`` consumed by its own task) have read
everything and wait for more; the process's CPU time over 5 s of that
idleness, as % of one core, beside the same process with 0 live queries.
Once on one replicated stream that 20 replicas have written (3 events
each), once on 100 plain streams (3 events each). Target: under 5% of a
core.

``--quick`` runs the same shapes small (5 MB, 5,000 events, 1 s idle).
Only the public API is used (``calliope.open``, ``app.journal``,
``app.snapshots``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import attrs

import calliope
from benchmarks.report import header, row, run_child, target

TICK = 0.001  # the ticker's sleep, seconds
STALL_TARGET_MS = 20.0
IDLE_TARGET_PERCENT = 5.0
MODULE = "benchmarks.responsiveness"


@calliope.event_type("bench.blob")
@attrs.frozen
class Blob:
    data: bytes


@calliope.event_type("bench.blob-state")
@attrs.frozen
class BlobState:
    data: bytes


@calliope.event_type("bench.note")
@attrs.frozen
class Note:
    n: int
    text: str


def note(n: int) -> Note:
    """A small event, about 100 bytes stored."""
    return Note(n=n, text=f"note {n:08d} " + "x" * 76)


@dataclass
class Config:
    blob_bytes: int
    events: int  # appended by the other process in (c) and (d)
    idle_seconds: float  # ticker alone; CPU measured over the idle live queries
    live_queries: int
    replicas: int
    per_stream: int  # events each replica (or plain stream) wrote before


DEFAULT = Config(50_000_000, 50_000, 5.0, 100, 20, 3)
QUICK = Config(5_000_000, 5_000, 1.0, 100, 20, 3)


class Ticker:
    """``async with Ticker() as ticker:`` a task that sleeps 1 ms in a loop on
    this event loop and records how late (ms) each wake-up is. Leaving the
    block lets the pending sleep finish, so a stall at the very end counts."""

    def __init__(self) -> None:
        self.late_ms: list[float] = []
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stopping:
            start = time.perf_counter()
            await asyncio.sleep(TICK)
            self.late_ms.append((time.perf_counter() - start - TICK) * 1000)

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)  # the ticker is sleeping before the workload starts
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping = True
        if self._task is not None:
            await self._task

    @property
    def longest(self) -> float:
        return max(self.late_ms, default=0.0)

    @property
    def p99(self) -> float:
        ordered = sorted(self.late_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


async def idle_ticker(seconds: float) -> Ticker:
    async with Ticker() as ticker:
        await asyncio.sleep(seconds)
    return ticker


async def big_event(directory: str, size: int) -> Ticker:
    """(a) persist one event with a ``size``-byte field, then query it back."""
    payload = os.urandom(size)
    async with calliope.open(directory, replica_id="here") as app:
        stream = app.journal.event_stream("blob", Blob)
        await stream.persist(Blob(b""))  # the stream's first use, not measured
        async with Ticker() as ticker:
            await stream.persist(Blob(payload))
            async for envelope in stream.query(from_sequence=2):
                assert len(envelope.event.data) == size
    return ticker


async def big_snapshot(directory: str, size: int) -> Ticker:
    """(b) save a snapshot of a state with a ``size``-byte field, load it back."""
    state = BlobState(os.urandom(size))
    async with calliope.open(directory, replica_id="here") as app:
        await app.snapshots.save_snapshot("blob", BlobState(b""), sequence=0)  # first use
        async with Ticker() as ticker:
            await app.snapshots.save_snapshot("blob", state, sequence=1)
            snapshot = await app.snapshots.load_snapshot("blob", BlobState)
        assert snapshot is not None and len(snapshot.state.data) == size
    return ticker


async def append_elsewhere(directory: str, kind: str, count: int) -> float:
    """Have another process append ``count`` events; seconds it took there."""
    result = await asyncio.to_thread(
        run_child, MODULE, "--append-child", directory, kind, str(count)
    )
    seconds: float = result["seconds"]
    return seconds


async def plain_catch_up(directory: str, count: int) -> tuple[Ticker, str]:
    """(c) on a plain stream."""
    async with calliope.open(directory, replica_id="here") as app:
        stream = app.journal.event_stream("shared", Note)
        await stream.persist(note(0))  # this process's writer knows the stream
        seconds = await append_elsewhere(directory, "plain", count)
        async with Ticker() as ticker:
            await stream.persist(note(1))
            seen = 0
            async with stream.live_query(from_sequence=1) as live:
                async for _ in live:
                    seen += 1
                    if seen == count + 2:
                        break
    return ticker, f"the other process appended {count:,} events in {seconds:.1f} s"


async def replicated_catch_up(directory: str, count: int) -> tuple[Ticker, str]:
    """(d) on a replicated stream."""
    async with calliope.open(directory, replica_id="here") as app:
        stream = app.journal.replicated_event_stream("shared", Note)
        await stream.persist(note(0))  # this replica's handle has started
        seconds = await append_elsewhere(directory, "replicated", count)
        async with Ticker() as ticker:
            reply = await stream.persist(note(1))
            seen = 0
            async with stream.live_query() as live:
                async for _ in live:
                    seen += 1
                    if seen == count + 2:
                        break
    return ticker, (
        f"replica 'there' wrote {count:,} events in {seconds:.1f} s; "
        f"the persist reply listed {len(reply.concurrent_updates):,} concurrent updates"
    )


async def append_child(directory: str, kind: str, count: int) -> float:
    """In a child process: append ``count`` events, 10 concurrent persists at
    a time, as replica "there" (durability fsync)."""
    async with calliope.open(directory, replica_id="there") as app:
        persist: Callable[[Note], Awaitable[object]]
        if kind == "plain":
            persist = app.journal.event_stream("shared", Note).persist
        else:
            persist = app.journal.replicated_event_stream("shared", Note).persist
        start = time.perf_counter()
        for first in range(0, count, 10):
            await asyncio.gather(*(persist(note(n)) for n in range(first, min(count, first + 10))))
        return time.perf_counter() - start


def stall_rows(name: str, ticker: Ticker, idle: Ticker, note_text: str) -> None:
    print(
        row(f"{name}, longest stall", ticker.longest, "ms", idle.longest, "idle loop", decimals=1)
    )
    print(row(f"{name}, p99 lateness", ticker.p99, "ms", idle.p99, "idle loop", decimals=1))
    print(target("longest stall", ticker.longest, STALL_TARGET_MS, "ms"))
    print(f"    ({len(ticker.late_ms):,} ticks; {note_text})")


async def write_idle_streams(directory: str, config: Config) -> None:
    """The streams the idle live queries follow: ``config.replicas`` replicas
    of one replicated stream, and ``config.live_queries`` plain streams,
    ``config.per_stream`` events each."""
    async with calliope.open(directory, replica_id="setup", durability="flush") as app:
        replicas = [
            app.journal.replicated_event_stream("idle", Note, replica_id=f"r{index:02d}")
            for index in range(config.replicas)
        ]
        for n in range(config.per_stream):
            for replica in replicas:  # in turns: each round follows the one before
                await replica.query().aggregate(lambda count, _: count + 1, 0)
                await replica.persist(note(n))
        for index in range(config.live_queries):
            plain = app.journal.event_stream(f"idle-{index:03d}", Note)
            for n in range(config.per_stream):
                await plain.persist(note(n))


async def idle_child(directory: str, kind: str, count: int, expected: int, seconds: float) -> None:
    """In a child process: ``count`` live queries that have read ``expected``
    events each and wait; print the CPU time over ``seconds`` of that."""
    async with calliope.open(directory, replica_id="reader") as app:
        caught_up = 0
        all_caught_up = asyncio.Event()

        async def consume(index: int) -> None:
            nonlocal caught_up
            if kind == "replicated":
                live: calliope.ReplicatedLiveQuery[Note] | calliope.LiveQuery[Note] = (
                    app.journal.replicated_event_stream("idle", Note).live_query()
                )
            else:
                live = app.journal.event_stream(f"idle-{index:03d}", Note).live_query()
            seen = 0
            async with live:
                async for _ in live:
                    seen += 1
                    if seen == expected:
                        caught_up += 1
                        if caught_up == count:
                            all_caught_up.set()

        start = time.perf_counter()
        tasks = [asyncio.create_task(consume(index)) for index in range(count)]
        if tasks:
            async with asyncio.timeout(60):
                await all_caught_up.wait()
        setup_seconds = time.perf_counter() - start
        await asyncio.sleep(0.5)  # let the catch-up settle
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"cpu_seconds": cpu, "wall_seconds": wall, "setup_seconds": setup_seconds}))


def idle_cpu(directory: str, kind: str, count: int, expected: int, seconds: float) -> float:
    """% of one core the idle child used."""
    result = run_child(
        MODULE, "--idle-child", directory, kind, str(count), str(expected), str(seconds)
    )
    percent: float = 100 * result["cpu_seconds"] / result["wall_seconds"]
    return percent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run of the same shapes")
    parser.add_argument("--append-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--idle-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.append_child:
        directory, kind, count = args.append_child
        print(json.dumps({"seconds": asyncio.run(append_child(directory, kind, int(count)))}))
        return
    if args.idle_child:
        directory, kind, count, expected, seconds = args.idle_child
        asyncio.run(idle_child(directory, kind, int(count), int(expected), float(seconds)))
        return

    config = QUICK if args.quick else DEFAULT
    mb = config.blob_bytes / 1e6
    with tempfile.TemporaryDirectory(dir=os.environ.get("CALLIOPE_BENCH_DIR")) as directory:
        header(
            f"event-loop stalls on {directory} (durability=fsync; a 1 ms ticker's "
            f"lateness during each workload, beside {config.idle_seconds:g} s of an idle loop)"
        )
        idle = asyncio.run(idle_ticker(config.idle_seconds))
        ticker = asyncio.run(big_event(os.path.join(directory, "a"), config.blob_bytes))
        stall_rows(f"(a) {mb:g} MB event", ticker, idle, "persist, then query it back")
        ticker = asyncio.run(big_snapshot(os.path.join(directory, "b"), config.blob_bytes))
        stall_rows(f"(b) {mb:g} MB snapshot", ticker, idle, "save_snapshot, then load_snapshot")
        ticker, text = asyncio.run(plain_catch_up(os.path.join(directory, "c"), config.events))
        stall_rows(
            f"(c) {config.events:,} behind, plain",
            ticker,
            idle,
            f"persist, then live query from 1; {text}",
        )
        ticker, text = asyncio.run(replicated_catch_up(os.path.join(directory, "d"), config.events))
        stall_rows(
            f"(d) {config.events:,} behind, replicated",
            ticker,
            idle,
            f"persist, then live query from the start; {text}",
        )

        header(
            f"idle live queries ({config.live_queries} per process, each its own task, "
            f"caught up and waiting; CPU over {config.idle_seconds:g} s idle)"
        )
        streams = os.path.join(directory, "idle")
        asyncio.run(write_idle_streams(streams, config))
        seconds = config.idle_seconds
        baseline = idle_cpu(streams, "none", 0, 0, seconds)
        count = config.live_queries
        replicated = idle_cpu(
            streams, "replicated", count, config.replicas * config.per_stream, seconds
        )
        print(
            row(
                f"(e) {count} live queries, 1 replicated stream",
                replicated,
                "% of core",
                baseline,
                "0 live queries",
                decimals=2,
            )
        )
        print(target("idle CPU", replicated, IDLE_TARGET_PERCENT, "% of a core"))
        print(f"    ({config.replicas} replicas wrote {config.per_stream} events each)")
        plain = idle_cpu(streams, "plain", count, config.per_stream, seconds)
        print(
            row(
                f"(f) {count} live queries, {count} plain streams",
                plain,
                "% of core",
                baseline,
                "0 live queries",
                decimals=2,
            )
        )
        print(target("idle CPU", plain, IDLE_TARGET_PERCENT, "% of a core"))


if __name__ == "__main__":
    main()
