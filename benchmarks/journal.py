"""Journal benchmark: durable persists, group commit, batches, replay.

Run: ``.venv/bin/python -m benchmarks.journal [--events N]`` (or ``make bench``).

Each figure is printed beside a baseline measured in the same run on the
same disk:

(a) one writer awaiting each durable ``persist``, vs a raw loop of
    ``os.write`` + ``os.fdatasync`` of frames of the same size;
(b) 256 concurrent tasks persisting durably (group commit), events/s;
(c) ``persist_all`` of 1,000-event batches, events/s, vs the raw loop
    writing the same bytes per batch with one fdatasync;
(d) replay of 1,000,000 events with ``query().aggregate`` in a fresh
    process (events/s and peak RSS growth), vs a raw read + frame parse +
    msgpack decode loop over the same segment files;
(e) the latency from a persist in another process to a live query here
    (median and p99 over 200 events written 5 ms apart);
(f) the cost of the codec's round-trip check (nothing undecodable is
    written): ``persist_all`` of 1,000-event batches with the check, vs the
    same without it (a switch only benchmarks set), on files (fsync) and in
    memory (no I/O: the check's whole share of the CPU), best of 9 rounds
    each, interleaved; and the codec's ``encode`` alone with and without.
    The target, a cost under 10%, is judged on what the check adds to
    ``encode`` against the CPU time a persisted event takes: the end-to-end
    rates swing by more than 10% either way on a shared machine.

``--only f`` (say) runs only the named figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import msgpack

import calliope
from benchmarks.report import header, rate, replay_in_child, replay_rows, row, target
from calliope.adapters.codec import Codec
from calliope.adapters.files.batch_format import batch_frame
from calliope.adapters.files.framing import parse_frames


@calliope.event_type("bench.item-added")
@attrs.frozen
class ItemAdded:
    sku: str
    quantity: int
    price_cents: int


@calliope.event_type("bench.item-tagged")
@attrs.frozen
class ItemTagged:
    """An event the check's quick test does not cover (a dict of lists): the full check."""

    sku: str
    counts: dict[str, list[int]]


def sample(n: int) -> ItemAdded:
    return ItemAdded(sku=f"sku-{n % 1000:04d}", quantity=1 + n % 5, price_cents=199 + n % 700)


def frame_size() -> int:
    """The size of the frame one persisted ``sample`` takes, as the journal writes it."""
    data = {"sku": "sku-0001", "quantity": 1, "price_cents": 199}
    item = msgpack.packb(["bench.item-added", 1, data])
    return len(batch_frame(1, "single", {"single": 1}, 1_700_000_000_000_000, [item]))


def raw_write_fsync(directory: str, count: int, size: int, per_sync: int = 1) -> float:
    """Seconds for ``count`` frames of ``size`` bytes, one fdatasync per ``per_sync``."""
    path = os.path.join(directory, "raw.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    chunk = b"x" * (size * per_sync)
    start = time.perf_counter()
    for _ in range(count // per_sync):
        os.write(fd, chunk)
        os.fdatasync(fd)
    elapsed = time.perf_counter() - start
    os.close(fd)
    os.unlink(path)
    return elapsed


async def single_writer(
    directory: str, count: int, setup: Callable[[calliope.App], None] | None = None
) -> float:
    async with calliope.open(directory, replica_id="single") as app:
        if setup is not None:
            setup(app)
        stream = app.journal.event_stream("single", ItemAdded)
        await stream.persist(sample(0))
        start = time.perf_counter()
        for n in range(count):
            await stream.persist(sample(n))
        return time.perf_counter() - start


async def concurrent_writers(
    directory: str, tasks: int, per_task: int, setup: Callable[[calliope.App], None] | None = None
) -> float:
    async with calliope.open(directory, replica_id="group") as app:
        if setup is not None:
            setup(app)
        stream = app.journal.event_stream("group", ItemAdded)
        await stream.persist(sample(0))

        async def writer(task: int) -> None:
            for n in range(per_task):
                await stream.persist(sample(task * per_task + n))

        start = time.perf_counter()
        await asyncio.gather(*(writer(task) for task in range(tasks)))
        return time.perf_counter() - start


async def batches(directory: str, count: int, size: int) -> float:
    async with calliope.open(directory, replica_id="batch") as app:
        stream = app.journal.event_stream("batch", ItemAdded)
        batch = [sample(n) for n in range(size)]
        start = time.perf_counter()
        for _ in range(count // size):
            await stream.persist_all(batch)
        return time.perf_counter() - start


async def checked_batches(
    target: str, count: int, size: int, *, check: bool
) -> tuple[float, float]:
    """Seconds (elapsed, and CPU of this process) for ``count`` events in
    ``persist_all`` batches of ``size``, with the codec's round-trip check
    on or off."""
    async with calliope.open(target, replica_id="check") as app:
        app.codec._verify_round_trip = check  # type: ignore[attr-defined]
        stream = app.journal.event_stream(f"check-{check}", ItemAdded)
        batch = [sample(n) for n in range(size)]
        await stream.persist_all(batch)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(count // size):
            await stream.persist_all(batch)
        return time.perf_counter() - start, time.process_time() - cpu


def check_cost(directory: str) -> None:
    """Figure (f): persist rates with and without the round-trip check."""
    total, batch, rounds = 50_000, 1_000, 9
    cpu_per_event: list[float] = []  # without the check
    for where in ("files", "memory"):
        best = {True: float("inf"), False: float("inf")}
        best_cpu = {True: float("inf"), False: float("inf")}
        for turn in range(rounds):
            for check in (True, False) if turn % 2 else (False, True):  # neither always first
                gc.collect()
                place = (
                    os.path.join(directory, f"f-{turn}-{check}")
                    if where == "files"
                    else f"memory://check-{turn}-{check}"
                )
                seconds, cpu = asyncio.run(checked_batches(place, total, batch, check=check))
                best[check] = min(best[check], seconds)
                best_cpu[check] = min(best_cpu[check], cpu)
        checked, unchecked = rate(total, best[True]), rate(total, best[False])
        print(
            row(
                f"(f) round-trip check, persist_all ({where})",
                checked,
                "events/s",
                unchecked,
                "without check",
                decimals=0,
            )
        )
        with_check, without = best_cpu[True] / total * 1e6, best_cpu[False] / total * 1e6
        print(f"    CPU per event: {with_check:.1f} us with the check, {without:.1f} us without")
        cpu_per_event.append(without)
    checked_us, unchecked_us = encode_costs([sample(n) for n in range(1_000)])
    added, least = checked_us - unchecked_us, min(cpu_per_event)
    print(
        f"(f) the codec's encode alone: {checked_us:.2f} us per event with the check, "
        f"{unchecked_us:.2f} us without: the check adds {added:.2f} us to the "
        f"{least:.1f} us of CPU a persisted event takes"
    )
    print(target("the check's cost", added / least * 100, 10, "% of persist throughput"))
    tagged = [ItemTagged(f"sku-{n}", {"red": [1], "large": [n, 2]}) for n in range(1_000)]
    checked_us, unchecked_us = encode_costs(tagged, repeats=10)
    print(
        f"(f) the full check (an event with a dict of lists): encode {checked_us:.2f} us per "
        f"event with the check, {unchecked_us:.2f} us without"
    )


def encode_costs(batch: list[Any], repeats: int = 50) -> tuple[float, float]:
    """Microseconds per event the codec's ``encode`` takes with the check
    and without (best of ``repeats``, taken in turns)."""
    encoders = {}
    for check in (True, False):
        codec = Codec()
        codec._verify_round_trip = check
        encoders[check] = codec.for_type(type(batch[0])).encode
    best = {True: float("inf"), False: float("inf")}
    for _ in range(repeats):
        for check, encode in encoders.items():
            start = time.perf_counter()
            for event in batch:
                encode(event)
            best[check] = min(best[check], time.perf_counter() - start)
    return best[True] / len(batch) * 1e6, best[False] / len(batch) * 1e6


async def fill(directory: str, count: int) -> None:
    async with calliope.open(directory, replica_id="filler", durability="flush") as app:
        stream = app.journal.event_stream("replay", ItemAdded)
        for start in range(0, count, 10_000):
            await stream.persist_all([sample(n) for n in range(start, min(count, start + 10_000))])


Totals = tuple[int, int, int]  # events, quantity, cents


def add(totals: Totals, event: ItemAdded) -> Totals:
    events, quantity, cents = totals
    return (events + 1, quantity + event.quantity, cents + event.quantity * event.price_cents)


def rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def replay_child(directory: str) -> None:
    """In a fresh process: replay with aggregate, then the raw loop; print JSON."""

    async def replay() -> tuple[float, Totals]:
        async with calliope.open(directory, replica_id="replayer") as app:
            stream = app.journal.event_stream("replay", ItemAdded)
            start = time.perf_counter()
            totals = await stream.query().aggregate(add, (0, 0, 0))
            return time.perf_counter() - start, totals

    before = rss_kib()
    seconds, totals = asyncio.run(replay())
    growth_kib = rss_kib() - before

    segments = sorted(Path(directory).rglob("*.seg"))
    start = time.perf_counter()
    raw_events = 0
    raw_quantity = 0
    for segment in segments:
        with open(segment, "rb") as handle:
            handle.seek(16)
            leftover = b""
            while chunk := handle.read(4 * 1024 * 1024):
                data = leftover + chunk
                parsed = parse_frames(data)
                for payload in parsed.payloads:
                    fields = msgpack.unpackb(payload)
                    if fields is None:  # a segment's seal
                        continue
                    for _, _, event in fields[4]:
                        raw_quantity += event["quantity"]
                        raw_events += 1
                leftover = data[parsed.end :]
    raw_seconds = time.perf_counter() - start
    assert (raw_events, raw_quantity) == totals[:2]
    print(
        json.dumps(
            {
                "events": totals[0],
                "seconds": seconds,
                "raw_seconds": raw_seconds,
                "rss_growth_kib": growth_kib,
            }
        )
    )


async def paced_writer(directory: str, count: int) -> None:
    """In a child process: persist ``count`` events, 5 ms apart."""
    async with calliope.open(directory, replica_id="paced") as app:
        stream = app.journal.event_stream("live", ItemAdded)
        for n in range(count):
            await stream.persist(sample(n))
            await asyncio.sleep(0.005)


async def live_latency(directory: str, count: int) -> list[float]:
    """Milliseconds from another process's persist to this live query."""
    lags: list[float] = []
    async with calliope.open(directory, replica_id="follower") as app:
        stream = app.journal.event_stream("live", ItemAdded)
        async with stream.live_query() as live:
            writer = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.journal", "--paced-child", directory, str(count)]
            )
            async for envelope in live:
                lags.append((time.time() - envelope.timestamp.timestamp()) * 1000)
                if len(lags) == count:
                    break
            writer.wait()
    return sorted(lags)


def single_writer_figure(directory: str, size: int) -> None:
    count = 5_000
    raw = raw_write_fsync(directory, count, size)
    ours = asyncio.run(single_writer(os.path.join(directory, "a"), count))
    print(
        row(
            "(a) 1 writer, awaited durable persist",
            rate(count, ours),
            "events/s",
            rate(count, raw),
            "os.write+fdatasync",
        )
    )


def group_figure(directory: str, size: int) -> None:
    tasks, per_task = 256, 200
    total = tasks * per_task
    ours = asyncio.run(concurrent_writers(os.path.join(directory, "b"), tasks, per_task))
    raw = raw_write_fsync(directory, total, size, per_sync=tasks)
    print(
        row(
            "(b) 256 concurrent tasks, durable persist",
            rate(total, ours),
            "events/s",
            rate(total, raw),
            "256 frames/fdatasync",
        )
    )


def batch_figure(directory: str, size: int) -> None:
    total, batch = 200_000, 1_000
    ours = asyncio.run(batches(os.path.join(directory, "c"), total, batch))
    raw = raw_write_fsync(directory, total, size, per_sync=batch)
    print(
        row(
            "(c) persist_all, 1,000-event batches",
            rate(total, ours),
            "events/s",
            rate(total, raw),
            "1,000 frames/fdatasync",
        )
    )


def replay_figure(directory: str, events: int) -> None:
    replay_dir = os.path.join(directory, "d")
    start = time.perf_counter()
    asyncio.run(fill(replay_dir, events))
    fill_seconds = time.perf_counter() - start
    result = replay_in_child("benchmarks.journal", replay_dir)
    replay_rows(
        f"(d) replay {result['events']:,} events, aggregate",
        result,
        f"writing them with persist_all of 10,000, flush: {fill_seconds:.1f} s",
    )


def latency_figure(directory: str) -> None:
    lags = asyncio.run(live_latency(os.path.join(directory, "e"), 200))
    median, p99 = lags[len(lags) // 2], lags[int(len(lags) * 0.99)]
    print(
        f"(e) live query, events from another process: median {median:.1f} ms, "
        f"p99 {p99:.1f} ms (poll_interval 10 ms; same process: at once)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to replay")
    parser.add_argument("--replay-child", help=argparse.SUPPRESS)
    parser.add_argument("--paced-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--only", default="abcdef", help="the figures to run, e.g. 'cf'")
    args = parser.parse_args()
    if args.replay_child:
        replay_child(args.replay_child)
        return
    if args.paced_child:
        asyncio.run(paced_writer(args.paced_child[0], int(args.paced_child[1])))
        return

    size = frame_size()
    with tempfile.TemporaryDirectory(dir=os.environ.get("CALLIOPE_BENCH_DIR")) as directory:
        header(f"journal on {directory} (frames of {size} bytes, durability=fsync)")
        if "a" in args.only:
            single_writer_figure(directory, size)
        if "b" in args.only:
            group_figure(directory, size)
        if "c" in args.only:
            batch_figure(directory, size)
        if "d" in args.only:
            replay_figure(directory, args.events)
        if "e" in args.only:
            latency_figure(directory)
        if "f" in args.only:
            check_cost(directory)


if __name__ == "__main__":
    main()
