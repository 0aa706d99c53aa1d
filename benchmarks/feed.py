"""Feed benchmark: what the feed costs writers, how fast it replays, what a
live feed costs per wake-up.

Run: ``.venv/bin/python -m benchmarks.feed [--events N] [--only abc]`` (or
``make bench``). Each figure is printed beside a baseline measured in the
same run on the same disk:

(a) persists with the feed in place (every write takes a feed entry) vs the
    same persists with the feed switched off (a switch only benchmarks set),
    five rounds each, interleaved, medians: one awaited writer, and 256
    concurrent tasks. Target: within 10%.
(b) replay of the feed: ``N`` events (1,000,000) over 1,000 streams written
    in interleaved 10-event batches, iterated with ``feed.query()`` in a
    fresh process, vs iterating one stream of as many events, written in
    the same 10-event batches, with ``query()`` in a fresh process; with
    each replay's peak RSS growth (memory flat for any backlog). Target:
    >= 0.8x. A projection's ``catch_up`` over the same feed is shown too.
(c) a live feed's cost per wake-up: what awaiting each event from a live
    feed adds to persisting it to a random stream (the same loop without
    the feed, subtracted), over 10,000 streams vs over 10 streams
    (durability "flush": no fsync in the loop; medians of 3). O(new
    events), not O(streams): the ratio should be near 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

import calliope
from benchmarks.journal import ItemAdded, concurrent_writers, rss_kib, sample, single_writer
from benchmarks.report import header, rate, row, run_child
from calliope.shell.app import App

_STREAMS = 1000
_BATCH = 10


def _feed_off(app: App) -> None:
    """Switch the file store's feed off before the first write (benchmarks only)."""
    app._store._log._feed_index = None  # type: ignore[attr-defined]


def _one(path: str, feed: bool) -> Coroutine[Any, Any, float]:
    return single_writer(path, 1500, None if feed else _feed_off)


def _many(path: str, feed: bool) -> Coroutine[Any, Any, float]:
    return concurrent_writers(path, 256, 40, None if feed else _feed_off)


def persist_cost(directory: str) -> None:
    rounds = 5
    runs: list[tuple[str, int, Callable[[str, bool], Coroutine[Any, Any, float]]]] = [
        ("(a) one awaited writer", 1500, _one),
        ("(a) 256 concurrent writers", 256 * 40, _many),
    ]
    for name, count, run in runs:
        with_feed: list[float] = []
        without: list[float] = []
        for index in range(rounds):
            for feed, into in ((True, with_feed), (False, without)):
                path = os.path.join(directory, f"a-{len(name)}-{index}-{feed}")
                into.append(rate(count, asyncio.run(run(path, feed))))
        print(
            row(
                name,
                statistics.median(with_feed),
                "events/s",
                statistics.median(without),
                "feed off",
                decimals=0,
            )
        )


async def _fill(directory: str, events: int) -> None:
    """``events`` over ``_STREAMS`` streams, in interleaved batches; and as
    many in one stream."""
    async with calliope.open(directory, replica_id="filler", durability="flush") as app:
        streams = [app.journal.event_stream(f"s-{n:04d}", ItemAdded) for n in range(_STREAMS)]
        written = 0
        while written < events:
            for stream in streams:
                await stream.persist_all([sample(written + i) for i in range(_BATCH)])
                written += _BATCH
                if written >= events:
                    break
        one = app.journal.event_stream("one", ItemAdded)  # the same batches, one stream
        for start in range(0, events, _BATCH):
            await one.persist_all([sample(n) for n in range(start, min(events, start + _BATCH))])


def _add(total: int, event: ItemAdded) -> int:
    return total + event.quantity


def replay_child(directory: str, what: str) -> None:
    """In a fresh process: one replay; print JSON (events, seconds, RSS growth)."""

    async def replay() -> tuple[int, float]:
        async with calliope.open(directory, replica_id="reader") as app:
            start = time.perf_counter()
            count = 0
            if what == "feed":
                async for _ in app.journal.feed(ItemAdded, prefix="s-").query():
                    count += 1
            elif what == "stream":
                async for _ in app.journal.event_stream("one", ItemAdded).query():
                    count += 1
            else:
                projection = app.projection("bench", ItemAdded, _add, 0, prefix="s-")
                await projection.catch_up()
                count = projection.position.entry if projection.position else 0
            return count, time.perf_counter() - start

    before = rss_kib()
    count, seconds = asyncio.run(replay())
    print(json.dumps({"events": count, "seconds": seconds, "rss": rss_kib() - before}))


def replay_figure(directory: str, events: int) -> None:
    path = os.path.join(directory, "b")
    start = time.perf_counter()
    asyncio.run(_fill(path, events))
    fill = time.perf_counter() - start
    feed = run_child("benchmarks.feed", "--replay-child", path, "feed")
    one = run_child("benchmarks.feed", "--replay-child", path, "stream")
    print(
        row(
            f"(b) feed replay, {feed['events']:,} ev/{_STREAMS:,} streams",
            rate(feed["events"], feed["seconds"]),
            "events/s",
            rate(one["events"], one["seconds"]),
            "one stream's query()",
        )
    )
    projection = run_child("benchmarks.feed", "--replay-child", path, "projection")
    print(
        f"    projection catch_up over the same feed: {projection['seconds']:.2f} s "
        f"({rate(events, projection['seconds']):,.0f} events/s)"
    )
    print(
        f"    peak RSS growth: feed {feed['rss'] / 1024:.1f} MiB, one stream "
        f"{one['rss'] / 1024:.1f} MiB, projection {projection['rss'] / 1024:.1f} MiB"
    )
    print(f"    (written with persist_all of {_BATCH}, flush: {fill:.1f} s)")


async def _wake_cost(directory: str, streams: int, rounds: int, live_feed: bool) -> float:
    """Seconds per persist to a random stream (and, with ``live_feed``, the
    live feed yielding it)."""
    async with calliope.open(directory, replica_id="live", durability="flush") as app:
        handles = [app.journal.event_stream(f"w-{n:05d}", ItemAdded) for n in range(streams)]
        for start in range(0, streams, 500):
            await asyncio.gather(*(h.persist(sample(0)) for h in handles[start : start + 500]))
        choices = random.Random(7)
        feed = app.journal.feed(ItemAdded)
        last = (await feed.query().to_list())[-1].position
        async with feed.live_query(after=last) as live:
            start_time = time.perf_counter()
            for n in range(rounds):
                await handles[choices.randrange(streams)].persist(sample(n))
                if live_feed:
                    await anext(live)
            return (time.perf_counter() - start_time) / rounds


def wake_figure(directory: str) -> None:
    added = {}
    for streams in (10_000, 10):
        path = os.path.join(directory, f"c-{streams}")
        costs = {
            live: statistics.median(
                asyncio.run(_wake_cost(f"{path}-{live}-{n}", streams, 1000, live)) for n in range(3)
            )
            for live in (True, False)
        }
        added[streams] = costs[True] - costs[False]
    print(
        row(
            "(c) a live feed's wake, 10,000 streams",
            added[10_000] * 1e6,
            "us/event",
            added[10] * 1e6,
            "10 streams",
            decimals=1,
        )
    )
    print("    (what following the feed adds to each persist to a random stream; flush)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--only", default="abc")
    parser.add_argument("--replay-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_child:
        replay_child(*args.replay_child)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("CALLIOPE_BENCH_DIR")) as directory:
        header(f"feed on {directory} (durability=fsync unless said)")
        if "a" in args.only:
            persist_cost(directory)
        if "b" in args.only:
            replay_figure(directory, args.events)
        if "c" in args.only:
            wake_figure(directory)


if __name__ == "__main__":
    main()
