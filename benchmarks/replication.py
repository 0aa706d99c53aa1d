"""Replicated stream benchmark: concurrent replicas writing; causal replay.

Run: ``.venv/bin/python -m benchmarks.replication [--events N]`` (or ``make bench``).

(a) three replicas (three apps in one process, file store, durable) each
    persisting to one replicated stream, beside the same three apps
    persisting to one plain stream: events/s and the ratio. A replicated
    persist also reads what the other replicas wrote since (to report
    concurrent updates), which the plain one does not.
(b) replay of 1,000,000 events written by 10 replicas, in causal order
    (``query().aggregate`` in a fresh process: a k-way merge of the ten logs
    with a causal check per event), beside a raw read + frame parse +
    msgpack decode loop over the same files, and the peak RSS growth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

import msgpack

import calliope
from benchmarks.journal import ItemAdded, rss_kib, sample
from benchmarks.report import header, rate, replay_in_child, replay_rows, row
from calliope.adapters.codec import Codec
from calliope.adapters.files.event_log import FileEventLog
from calliope.adapters.files.framing import parse_frames
from calliope.core.version_vector import VersionVector

REPLICAS = 10


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
    log = FileEventLog(directory, durability="flush", segment_bytes=64 << 20, poll_interval=1)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to replay")
    parser.add_argument("--replay-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_child:
        replay_child(args.replay_child)
        return
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


if __name__ == "__main__":
    main()
