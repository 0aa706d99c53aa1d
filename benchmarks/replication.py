"""Replicated stream benchmark: writers, causal replay, one busy handle, a stalled consumer.

Run: ``.venv/bin/python -m benchmarks.replication [--events N] [--quick]``
(or ``make bench``).

(a) three replicas (three apps in one process, file store, durable) each
    persisting to one replicated stream, beside the same three apps
    persisting to one plain stream: events/s and the ratio. A replicated
    persist also reads what the other replicas wrote since (to report
    concurrent updates), which the plain one does not.
(b) replay of 1,000,000 events written by 10 replicas, in causal order
    (``query().aggregate`` in a fresh process: a k-way merge of the ten logs
    with a causal check per event), beside a raw read + frame parse +
    msgpack decode loop over the same files, and the peak RSS growth.
(c) 1,000 and then 2,000 concurrent ``persist`` calls (``asyncio.gather``)
    on one replicated stream handle (file store, durable): the time of each
    and time(2,000)/time(1,000) (linear: ~2), beside the same on one plain
    stream handle.
(d) a consumer that stalls 50,000 events behind: in a fresh process, a
    replicated live query takes the stream's first event (it is caught up and
    waits), then its consumer stalls while another process writes 50,000
    events of ~100 bytes as another replica; it takes the next event and
    stalls 3 s more. The peak RSS growth of that process from the stall on,
    beside the same with a plain live query on a plain stream.
    Target: growth under 16 MiB (a slow consumer should hold back reading,
    not memory).

``--quick`` runs the same shapes small (100,000 events to replay, 100 and
200 persists, 5,000 events behind and a 1 s stall). (c) and (d) use only the
public API (``calliope.open``, ``app.journal``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgpack

import calliope
from benchmarks.journal import ItemAdded, rss_kib, sample
from benchmarks.report import (
    PeakRss,
    header,
    rate,
    replay_in_child,
    replay_rows,
    row,
    run_child,
    target,
)
from benchmarks.responsiveness import Note, note
from calliope.adapters.codec import Codec
from calliope.adapters.files.changes import FileChanges
from calliope.adapters.files.event_log import FileEventLog
from calliope.adapters.files.framing import parse_frames
from calliope.core.version_vector import VersionVector

REPLICAS = 10
GROWTH_TARGET_MIB = 16.0


async def writers(directory: str, per_replica: int, replicated: bool) -> float:
    names = ["r0", "r1", "r2"]
    async with (
        calliope.open(directory, replica_id=names[0]) as a,
        calliope.open(directory, replica_id=names[1]) as b,
        calliope.open(directory, replica_id=names[2]) as c,
    ):

        async def write(app: calliope.App) -> None:
            if replicated:
                stream = app.journal.replicated_event_stream("r", ItemAdded)
                for n in range(per_replica):
                    await stream.persist(sample(n))
            else:
                plain = app.journal.event_stream("p", ItemAdded)
                for n in range(per_replica):
                    await plain.persist(sample(n))

        start = time.perf_counter()
        await asyncio.gather(write(a), write(b), write(c))
        return time.perf_counter() - start


async def fill(directory: str, total: int) -> None:
    """``total`` events from 10 replicas that now and then learn each other's
    progress, written straight through the port in batches of 500."""
    changes = FileChanges(directory, poll_interval=1)
    log = FileEventLog(directory, durability="flush", segment_bytes=64 << 20, changes=changes)
    codec = Codec().for_type(ItemAdded)
    rng = random.Random(5)
    known = [VersionVector() for _ in range(REPLICAS)]  # what each replica has seen
    batch = 500
    for _ in range(total // batch):
        replica = rng.randrange(REPLICAS)
        other = rng.randrange(REPLICAS)
        known[replica] = known[replica].merge(known[other])  # it syncs with another
        events = [codec.encode(sample(n)) for n in range(batch)]
        stored = await log.append_replica(
            "replay", f"r{replica}", events, observed=known[replica].to_dict(), timestamp_us=1
        )
        assert stored is not None
        known[replica] = VersionVector(stored.version).increment(f"r{replica}", batch - 1)
    await log.aclose()


def replay_child(directory: str) -> None:
    async def replay() -> tuple[float, int]:
        async with calliope.open(directory, replica_id="reader") as app:
            stream = app.journal.replicated_event_stream("replay", ItemAdded)
            start = time.perf_counter()
            count = await stream.query().aggregate(lambda n, _: n + 1, 0)
            return time.perf_counter() - start, count

    before = rss_kib()
    seconds, count = asyncio.run(replay())
    growth = rss_kib() - before
    start = time.perf_counter()
    raw = 0
    for segment in sorted(Path(directory).rglob("*.seg")):
        data = segment.read_bytes()
        for payload in parse_frames(data, 16).payloads:
            fields = msgpack.unpackb(payload)
            if fields is not None:
                raw += len(fields[4])
    raw_seconds = time.perf_counter() - start
    assert raw == count, (raw, count)
    print(
        json.dumps(
            {
                "events": count,
                "seconds": seconds,
                "raw_seconds": raw_seconds,
                "rss_growth_kib": growth,
            }
        )
    )


async def concurrent_persists(directory: str, counts: list[int], replicated: bool) -> list[float]:
    """Seconds for each of ``counts`` concurrent persists on one handle."""
    async with calliope.open(directory, replica_id="r0") as app:
        persist: Callable[[ItemAdded], Awaitable[object]]
        if replicated:
            persist = app.journal.replicated_event_stream("many", ItemAdded).persist
        else:
            persist = app.journal.event_stream("many", ItemAdded).persist
        await persist(sample(0))  # the handle's first use, not measured
        seconds = []
        for count in counts:
            start = time.perf_counter()
            await asyncio.gather(*(persist(sample(n)) for n in range(count)))
            seconds.append(time.perf_counter() - start)
        return seconds


async def fill_backlog(directory: str, kind: str, count: int) -> None:
    """``count`` ~100-byte events by replica "writer" on the ``kind`` stream
    "backlog-<kind>" (10 concurrent persists at a time, flush)."""
    async with calliope.open(directory, replica_id="writer", durability="flush") as app:
        persist: Callable[[Note], Awaitable[object]]
        if kind == "replicated":
            persist = app.journal.replicated_event_stream(f"backlog-{kind}", Note).persist
        else:
            persist = app.journal.event_stream(f"backlog-{kind}", Note).persist
        for first in range(0, count, 10):
            notes = (note(n) for n in range(first, min(count, first + 10)))
            await asyncio.gather(*(persist(item) for item in notes))


async def stalled_consumer(
    directory: str, kind: str, backlog: int, stall: float
) -> dict[str, float]:
    """In a fresh process: a live query takes the stream's first event and
    is caught up; its consumer stalls while another process writes
    ``backlog`` events; then it takes the next one and stalls ``stall``
    seconds more. The peak RSS growth from the stall on."""
    async with calliope.open(directory, replica_id="reader") as app:
        live: calliope.ReplicatedLiveQuery[Note] | calliope.LiveQuery[Note]
        if kind == "replicated":
            live = app.journal.replicated_event_stream(f"backlog-{kind}", Note).live_query()
        else:
            live = app.journal.event_stream(f"backlog-{kind}", Note).live_query()
        async with live:
            await anext(live)  # caught up: the live query now waits for news
            with PeakRss() as peak:
                writer = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "benchmarks.replication",
                    "--fill-child",
                    directory,
                    kind,
                    str(backlog),
                )
                await writer.wait()  # the consumer stalls while the backlog builds
                start = time.perf_counter()
                await anext(live)
                first = time.perf_counter() - start
                await asyncio.sleep(stall)
    return {"rss_growth_kib": peak.growth_kib, "first_event_seconds": first}


def stall_in_child(directory: str, kind: str, backlog: int, stall: float) -> dict[str, float]:
    result = run_child(
        "benchmarks.replication", "--stall-child", directory, kind, str(backlog), str(stall)
    )
    return {key: float(value) for key, value in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events to replay (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="a small run of the same shapes")
    parser.add_argument("--replay-child", help=argparse.SUPPRESS)
    parser.add_argument("--stall-child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--fill-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_child:
        replay_child(args.replay_child)
        return
    if args.fill_child:
        directory, kind, count = args.fill_child
        asyncio.run(fill_backlog(directory, kind, int(count)))
        return
    if args.stall_child:
        directory, kind, count, stall = args.stall_child
        stalled = stalled_consumer(directory, kind, int(count), float(stall))
        print(json.dumps(asyncio.run(stalled)))
        return
    if args.events is None:
        args.events = 100_000 if args.quick else 1_000_000
    counts = [100, 200] if args.quick else [1_000, 2_000]
    backlog, stall = (5_000, 1.0) if args.quick else (50_000, 3.0)
    with tempfile.TemporaryDirectory(dir=os.environ.get("CALLIOPE_BENCH_DIR")) as directory:
        header(f"replicated streams on {directory} (durability=fsync)")
        per_replica = 2_000
        plain = writers(os.path.join(directory, "plain"), per_replica, replicated=False)
        plain_seconds = asyncio.run(plain)
        replicated = writers(os.path.join(directory, "repl"), per_replica, replicated=True)
        replicated_seconds = asyncio.run(replicated)
        total = 3 * per_replica
        print(
            row(
                "(a) 3 replicas persisting, replicated stream",
                rate(total, replicated_seconds),
                "events/s",
                rate(total, plain_seconds),
                "same 3 apps, plain stream",
            )
        )
        replay_dir = os.path.join(directory, "replay")
        start = time.perf_counter()
        asyncio.run(fill(replay_dir, args.events))
        fill_seconds = time.perf_counter() - start
        result = replay_in_child("benchmarks.replication", replay_dir)
        replay_rows(
            f"(b) causal replay, {result['events']:,} events, 10 replicas",
            result,
            f"writing them through the port, flush: {fill_seconds:.1f} s",
        )

        replicated_times = asyncio.run(
            concurrent_persists(os.path.join(directory, "many-r"), counts, replicated=True)
        )
        plain_times = asyncio.run(
            concurrent_persists(os.path.join(directory, "many-p"), counts, replicated=False)
        )
        for count, ours, base in zip(counts, replicated_times, plain_times, strict=True):
            print(
                row(
                    f"(c) {count:,} concurrent persists, replicated",
                    ours * 1000,
                    "ms",
                    base * 1000,
                    "plain stream handle",
                )
            )
        print(
            row(
                f"(c) time({counts[1]:,})/time({counts[0]:,}), replicated",
                replicated_times[1] / replicated_times[0],
                "x",
                plain_times[1] / plain_times[0],
                "plain stream handle",
                decimals=2,
            )
        )
        print("    (all on one handle, durable, gathered at once; linear growth is ~2.00x)")

        backlog_dir = os.path.join(directory, "backlog")
        for kind in ("replicated", "plain"):
            asyncio.run(fill_backlog(backlog_dir, kind, 1))  # the event the consumer takes
        start = time.perf_counter()
        ours_stall = stall_in_child(backlog_dir, "replicated", backlog, stall)
        base_stall = stall_in_child(backlog_dir, "plain", backlog, stall)
        fill_seconds = time.perf_counter() - start
        growth = ours_stall["rss_growth_kib"] / 1024
        print(
            row(
                f"(d) stalled consumer {backlog:,} behind",
                growth,
                "MiB RSS",
                base_stall["rss_growth_kib"] / 1024,
                "plain live query",
                decimals=1,
            )
        )
        print(target("peak RSS growth", growth, GROWTH_TARGET_MIB, "MiB"))
        print(
            f"    (caught up, then another process wrote the backlog while the consumer "
            f"stalled; next event after {ours_stall['first_event_seconds'] * 1000:.0f} ms, "
            f"plain {base_stall['first_event_seconds'] * 1000:.0f} ms; then a {stall:g} s "
            f"stall; both runs {fill_seconds:.1f} s)"
        )


if __name__ == "__main__":
    main()
