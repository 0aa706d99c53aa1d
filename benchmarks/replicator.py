"""Replicator benchmark: updates, replicas=3 latency, catch-up, remote RGA typing.

Run: ``.venv/bin/python -m benchmarks.replicator [--only abcde] [--quick]``
(sizes: ``--ops``, ``--catch-up``, ``--chars``).

Everything runs on the file store in a temporary directory, durability
fsync, and each figure is printed beside a baseline measured in the same run
on the same disk:

(a) ``update`` of a GCounter key, replicas=1, from one awaited task, beside a
    plain durable ``persist`` of a small event from one awaited task, in five
    interleaved rounds (medians: the disk drifts). Target: at least 0.8x the
    plain persist.
(b) the same from 256 concurrent tasks (updates share one write), beside 256
    concurrent plain persists. Target: at least 50,000 updates/s.
(c) ``update(..., replicas=3)`` latency across 3 OS processes: this one
    updates; two child processes hold replicas of the key (each started it
    with a ``get`` before the timing begins). p50 and p99 over 200 updates
    (after 20 warm-up ones), beside the round trip of plain streams across
    the same processes (a persist here, each child's live query sees it and
    persists a reply, this process's live queries see both), and the
    replicas=1 latency.
(d) catch-up of a new replica over 100,000 GCounter operations (written in
    updates of 1,000 operations by this process, which then closes, writing
    a CRDT snapshot): a fresh process opens the store and ``get``\\ s the key
    (replicas=1, nothing else running), first with the snapshot, then after
    the ``*.snap`` files under ``<store>/snapshots/`` are deleted (with a
    new replica id each time, so the first reader's own snapshot and
    progress do not help the second). Beside the replay of 100,000 plain
    events in a fresh process (``query().aggregate``). Target with the
    snapshot: under 1 s.
(e) remote RGA operations applied per second: this process starts the key
    (a ``get``), then blocks its event loop while a child process types N
    characters (one awaited ``update`` each) and exits; the event loop then
    resumes and ``wait_until`` the text is complete: N / that time is the
    rate at which the follower reads, decodes and applies remote operations.
    Beside the pure core rate (``RGA.effect`` of the same N inserts, tagged
    beforehand) and, for scale, the child's local typing rate (N awaited
    ``update`` calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import calliope
from benchmarks.journal import ItemAdded, sample
from benchmarks.report import header, rate, row, run_child
from calliope.core.crdt import RGA, GCounter, Tagged, tag_operations
from calliope.core.version_vector import VersionVector

MODULE = "benchmarks.replicator"
KEY = "bench"
TASKS = 256
LATENCY_UPDATES = 200
WARMUP = 20
OPEN_OPTIONS: dict[str, Any] = {
    "poll_interval": 0.01,
    "heartbeat_interval": 0.2,
    "failure_timeout": 1.0,
}


def bench_open(directory: str, replica_id: str) -> calliope.App:
    return calliope.open(directory, replica_id=replica_id, durability="fsync", **OPEN_OPTIONS)


def ms(seconds: float) -> float:
    return seconds * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def at_least(what: str, figure: float, floor: float, unit: str) -> str:
    """An indented target line for a figure that should be at least ``floor``."""
    verdict = "met" if figure >= floor else "missed"
    return f"    target: {what} >= {floor:g} {unit}: {verdict} ({figure:,.2f} {unit})"


def under(what: str, figure: float, limit: float, unit: str) -> str:
    verdict = "met" if figure < limit else "missed"
    return f"    target: {what} < {limit:g} {unit}: {verdict} ({figure:,.3f} {unit})"


def increment(counter: GCounter) -> object:
    return counter.increment()


# -- (a) and (b): throughput ---------------------------------------------------


async def awaited_updates(directory: str, count: int) -> float:
    async with bench_open(directory, "single") as app:
        await app.replicator.update(KEY, GCounter, increment)
        start = time.perf_counter()
        for _ in range(count):
            await app.replicator.update(KEY, GCounter, increment)
        seconds = time.perf_counter() - start
        counter = await app.replicator.get(KEY, GCounter)
        assert counter.value == count + 1, counter.value
        return seconds


async def awaited_persists(directory: str, count: int) -> float:
    async with bench_open(directory, "plain") as app:
        stream = app.journal.event_stream("plain", ItemAdded)
        await stream.persist(sample(0))
        start = time.perf_counter()
        for n in range(count):
            await stream.persist(sample(n))
        return time.perf_counter() - start


async def concurrent_updates(directory: str, per_task: int) -> float:
    async with bench_open(directory, "group") as app:
        await app.replicator.update(KEY, GCounter, increment)

        async def writer() -> None:
            for _ in range(per_task):
                await app.replicator.update(KEY, GCounter, increment)

        start = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(TASKS)))
        seconds = time.perf_counter() - start
        counter = await app.replicator.get(KEY, GCounter)
        assert counter.value == TASKS * per_task + 1, counter.value
        return seconds


async def concurrent_persists(directory: str, per_task: int) -> float:
    async with bench_open(directory, "plain-group") as app:
        stream = app.journal.event_stream("plain", ItemAdded)
        await stream.persist(sample(0))

        async def writer(task: int) -> None:
            for n in range(per_task):
                await stream.persist(sample(task * per_task + n))

        start = time.perf_counter()
        await asyncio.gather(*(writer(task) for task in range(TASKS)))
        return time.perf_counter() - start


def single_figure(directory: str, count: int) -> None:
    # The disk's fsync latency drifts by tens of per cent within a minute:
    # interleave five short rounds of each and compare the medians.
    rounds = 5
    part = max(1, count // rounds)
    count = part * rounds
    plains, ours_ = [], []
    for round_ in range(rounds):
        base = os.path.join(directory, f"a{round_}")
        plains.append(asyncio.run(awaited_persists(base + "-plain", part)))
        ours_.append(asyncio.run(awaited_updates(base, part)))
    plain = statistics.median(plains) * rounds
    ours = statistics.median(ours_) * rounds
    ratio = plain / ours
    print(
        row(
            "(a) 1 task, awaited update, replicas=1",
            rate(count, ours),
            "updates/s",
            rate(count, plain),
            "awaited persist",
        )
    )
    print(at_least("update / plain persist", ratio, 0.8, "x"))


def group_figure(directory: str, total: int) -> None:
    per_task = max(1, total // TASKS)
    total = per_task * TASKS
    plain = asyncio.run(concurrent_persists(os.path.join(directory, "b-plain"), per_task))
    ours = asyncio.run(concurrent_updates(os.path.join(directory, "b"), per_task))
    print(
        row(
            "(b) 256 tasks, concurrent update, replicas=1",
            rate(total, ours),
            "updates/s",
            rate(total, plain),
            "256 tasks persist",
        )
    )
    print(at_least("updates/s", rate(total, ours), 50_000, "updates/s"))


# -- (c): replicas=3 latency across processes ----------------------------------


async def holder_child(directory: str, replica_id: str, total: int) -> None:
    """A child of (c): hold a replica of the key until it reaches ``total``."""
    async with bench_open(directory, replica_id) as app:
        await app.replicator.get(KEY, GCounter)
        print("ready", flush=True)
        await app.replicator.wait_until(KEY, GCounter, lambda c: c.value >= total, timeout=300)


async def echo_child(directory: str, replica_id: str, count: int) -> None:
    """A child of (c)'s baseline: answer each ping with a pong of its own."""
    async with bench_open(directory, replica_id) as app:
        pings = app.journal.event_stream("ping", ItemAdded)
        pongs = app.journal.event_stream(f"pong-{replica_id}", ItemAdded)
        seen = 0
        async with pings.live_query() as live:
            print("ready", flush=True)
            async for envelope in live:
                await pongs.persist(envelope.event)
                seen += 1
                if seen == count:
                    break


def start_children(mode: str, directory: str, names: list[str], count: int) -> list[Any]:
    children = [
        subprocess.Popen(
            [sys.executable, "-m", MODULE, mode, directory, name, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    for child in children:
        stdout: IO[str] | None = child.stdout
        assert stdout is not None
        line = stdout.readline()
        assert line.strip() == "ready", f"a child of (c) said {line!r}"
    return children


def wait_children(children: list[Any]) -> None:
    for child in children:
        assert child.wait(timeout=120) == 0, f"a child of (c) exited with {child.returncode}"


async def replicated_latency(directory: str) -> list[float]:
    total = WARMUP + LATENCY_UPDATES
    async with bench_open(directory, "writer") as app:
        await app.replicator.get(KEY, GCounter)
        children = await asyncio.to_thread(
            start_children, "--holder-child", directory, ["h1", "h2"], total
        )
        lags: list[float] = []
        for n in range(total):
            start = time.perf_counter()
            await app.replicator.update(KEY, GCounter, increment, replicas=3, timeout=30)
            if n >= WARMUP:
                lags.append(time.perf_counter() - start)
        await asyncio.to_thread(wait_children, children)
    return lags


async def local_latency(directory: str) -> list[float]:
    async with bench_open(directory, "alone") as app:
        await app.replicator.get(KEY, GCounter)
        lags: list[float] = []
        for n in range(WARMUP + LATENCY_UPDATES):
            start = time.perf_counter()
            await app.replicator.update(KEY, GCounter, increment)
            if n >= WARMUP:
                lags.append(time.perf_counter() - start)
    return lags


async def plain_round_trips(directory: str) -> list[float]:
    """Persist a ping here; wait until both children's pongs are seen here."""
    total = WARMUP + LATENCY_UPDATES
    names = ["e1", "e2"]
    async with bench_open(directory, "pinger") as app:
        pings = app.journal.event_stream("ping", ItemAdded)
        pongs = [app.journal.event_stream(f"pong-{name}", ItemAdded) for name in names]
        children = await asyncio.to_thread(start_children, "--echo-child", directory, names, total)
        lags: list[float] = []
        async with pongs[0].live_query() as first, pongs[1].live_query() as second:
            for n in range(total):
                start = time.perf_counter()
                await pings.persist(sample(n))
                await anext(first)
                await anext(second)
                if n >= WARMUP:
                    lags.append(time.perf_counter() - start)
        await asyncio.to_thread(wait_children, children)
    return lags


def latency_figure(directory: str) -> None:
    replicated = asyncio.run(replicated_latency(os.path.join(directory, "c")))
    plain = asyncio.run(plain_round_trips(os.path.join(directory, "c-plain")))
    local = asyncio.run(local_latency(os.path.join(directory, "c-local")))
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        figure = ms(percentile(replicated, fraction))
        print(
            row(
                f"(c) update replicas=3, 3 processes, {name}",
                figure,
                "ms",
                ms(percentile(plain, fraction)),
                "plain ping + 2 pongs",
                decimals=2,
            )
        )
        print(
            f"    replicas=1 in this process, {name}: {ms(percentile(local, fraction)):.2f} ms; "
            f"replicas=3 mean {ms(statistics.fmean(replicated)):.2f} ms, "
            f"max {ms(max(replicated)):.2f} ms"
        )
    print(
        f"    ({LATENCY_UPDATES} updates after {WARMUP} warm-up ones; poll_interval "
        f"{OPEN_OPTIONS['poll_interval'] * 1000:g} ms, heartbeat_interval "
        f"{OPEN_OPTIONS['heartbeat_interval']:g} s)"
    )


# -- (d): catch-up -------------------------------------------------------------


async def fill_counter(directory: str, operations: int, per_update: int = 1_000) -> None:
    async with bench_open(directory, "filler") as app:
        done = 0
        while done < operations:
            size = min(per_update, operations - done)

            def increments(c: GCounter, k: int = size) -> object:
                return [c.increment()] * k

            await app.replicator.update(KEY, GCounter, increments)
            done += size
        stream = app.journal.event_stream("plain", ItemAdded)
        for start in range(0, operations, 10_000):
            await stream.persist_all(
                [sample(n) for n in range(start, min(operations, start + 10_000))]
            )


def catch_up_child(directory: str, replica_id: str) -> None:
    """A child of (d): open the store as a new replica and get the key."""

    async def catch_up() -> tuple[float, float, int]:
        start = time.perf_counter()
        async with bench_open(directory, replica_id) as app:
            opened = time.perf_counter()
            counter = await app.replicator.get(KEY, GCounter)
            got = time.perf_counter()
            return got - start, got - opened, counter.value

    total, get, value = asyncio.run(catch_up())
    print(json.dumps({"seconds": total, "get_seconds": get, "value": value}))


def replay_child(directory: str, replica_id: str) -> None:
    """A child of (d)'s baseline: replay the plain stream in a fresh process."""

    async def replay() -> tuple[float, int]:
        start = time.perf_counter()
        async with bench_open(directory, replica_id) as app:
            stream = app.journal.event_stream("plain", ItemAdded)
            count = await stream.query().aggregate(lambda n, _: n + 1, 0)
            return time.perf_counter() - start, count

    seconds, count = asyncio.run(replay())
    print(json.dumps({"seconds": seconds, "events": count}))


def delete_snapshots(directory: str) -> int:
    snaps = list(Path(directory, "snapshots").rglob("*.snap"))
    for snap in snaps:
        snap.unlink()
    return len(snaps)


def catch_up_figure(directory: str, operations: int) -> None:
    store = os.path.join(directory, "d")
    start = time.perf_counter()
    asyncio.run(fill_counter(store, operations))
    fill_seconds = time.perf_counter() - start
    snaps = len(list(Path(store, "snapshots").rglob("*.snap")))
    plain = run_child(MODULE, "--replay-child", store, "replayer")
    assert plain["events"] == operations, plain
    with_snapshot = run_child(MODULE, "--catch-up-child", store, "reader-1")
    deleted = delete_snapshots(store)
    without = run_child(MODULE, "--catch-up-child", store, "reader-2")
    for result in (with_snapshot, without):
        assert result["value"] == operations, result
    plain_rate = rate(operations, plain["seconds"])
    print(
        row(
            f"(d) catch-up over {operations:,} ops, snapshot",
            with_snapshot["seconds"],
            "s",
            plain["seconds"],
            f"replay {operations:,} plain",
            decimals=3,
        )
    )
    print(under("open + get with the snapshot", with_snapshot["seconds"], 1, "s"))
    print(
        row(
            f"(d) catch-up over {operations:,} ops, none",
            without["seconds"],
            "s",
            plain["seconds"],
            f"replay {operations:,} plain",
            decimals=3,
        )
    )
    print(
        row(
            "(d) catch-up replay rate, no snapshot",
            rate(operations, without["seconds"]),
            "ops/s",
            plain_rate,
            "plain query events/s",
        )
    )
    print(
        f"    (open + get in a fresh process; the get alone: {with_snapshot['get_seconds']:.3f} s "
        f"with, {without['get_seconds']:.3f} s without; {snaps} snapshot file(s) after the "
        f"writer closed, {deleted} deleted before the second reader; filled in "
        f"{fill_seconds:.1f} s, updates of 1,000 operations)"
    )


# -- (e): remote RGA typing ----------------------------------------------------


def text_of(chars: int) -> str:
    alphabet = "the quick brown fox jumps over the lazy dog "
    return "".join(alphabet[n % len(alphabet)] for n in range(chars))


async def typist_child(directory: str, replica_id: str, chars: int) -> None:
    """A child of (e): type ``chars`` characters, one awaited update each."""
    text = text_of(chars)
    async with bench_open(directory, replica_id) as app:
        start = time.perf_counter()
        for char in text:

            def type_one(t: RGA, c: str = char) -> object:
                return t.insert(len(t), c)

            await app.replicator.update(KEY, RGA, type_one)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds}))


async def follow_typing(directory: str, chars: int) -> tuple[float, dict[str, Any], bool]:
    expected = text_of(chars)
    async with bench_open(directory, "follower") as app:
        await app.replicator.get(KEY, RGA)  # the key is started: its follower is live
        # Block this event loop while the child types (nothing here runs), so
        # that what is timed below is applying, not the child's typing.
        typist = run_child(MODULE, "--typist-child", directory, "typist", str(chars))
        start = time.perf_counter()
        text = await app.replicator.wait_until(
            KEY, RGA, lambda t: len(t) >= chars, timeout=max(60.0, chars / 100)
        )
        seconds = time.perf_counter() - start
        return seconds, typist, text.text == expected


def core_typing(chars: int) -> float:
    """Seconds ``RGA.effect`` takes for the same inserts, tagged beforehand."""
    state = RGA()
    version = VersionVector()
    tagged: list[Tagged[Any]] = []
    for char in text_of(chars):
        [one] = tag_operations("typist", version, [state.insert(len(state), char)])
        state = state.effect(one)
        version = one.version
        tagged.append(one)
    replica = RGA()
    start = time.perf_counter()
    for one in tagged:
        replica = replica.effect(one)
    seconds = time.perf_counter() - start
    assert replica.text == text_of(chars)
    return seconds


def typing_figure(directory: str, chars: int) -> None:
    seconds, typist, exact = asyncio.run(follow_typing(os.path.join(directory, "e"), chars))
    core = core_typing(chars)
    print(
        row(
            f"(e) remote RGA inserts applied ({chars:,})",
            rate(chars, seconds),
            "ops/s",
            rate(chars, core),
            "RGA.effect alone",
        )
    )
    print(
        f"    the child typed them at {rate(chars, typist['seconds']):,.0f} updates/s "
        f"(one awaited update each); the text here "
        f"{'is exactly' if exact else 'is NOT'} the typed text"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="abcde", help="the figures to run, e.g. 'a,b' or 'ab'")
    parser.add_argument("--ops", type=int, default=5_000, help="(a) updates; (b) uses 10x")
    parser.add_argument("--catch-up", type=int, default=100_000, help="(d) operations")
    parser.add_argument("--chars", type=int, default=10_000, help="(e) characters typed")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--holder-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--echo-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--catch-up-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--replay-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--typist-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.holder_child:
        directory, name, count = args.holder_child
        asyncio.run(holder_child(directory, name, int(count)))
        return
    if args.echo_child:
        directory, name, count = args.echo_child
        asyncio.run(echo_child(directory, name, int(count)))
        return
    if args.catch_up_child:
        catch_up_child(*args.catch_up_child)
        return
    if args.replay_child:
        replay_child(*args.replay_child)
        return
    if args.typist_child:
        directory, name, count = args.typist_child
        asyncio.run(typist_child(directory, name, int(count)))
        return
    if args.quick:
        args.ops, args.catch_up, args.chars = 500, 10_000, 1_000

    with tempfile.TemporaryDirectory(dir=os.environ.get("CALLIOPE_BENCH_DIR")) as directory:
        header(f"replicator on {directory} (file store, durability=fsync)")
        if "a" in args.only:
            single_figure(directory, args.ops)
        if "b" in args.only:
            group_figure(directory, 10 * args.ops)
        if "c" in args.only:
            latency_figure(directory)
        if "d" in args.only:
            catch_up_figure(directory, args.catch_up)
        if "e" in args.only:
            typing_figure(directory, args.chars)


if __name__ == "__main__":
    main()
