"""PostgreSQL benchmark: persists, group commit, replay and the feed.

Run: ``.venv/bin/python -m benchmarks.postgres [--dsn DSN] [--events N]``
(the DSN defaults to ``CALLIOPE_POSTGRES_DSN`` or the machine's
``postgresql://postgres@127.0.0.1:5432/test``; a fresh schema per run,
dropped at the end). Each figure beside a baseline through the same driver
(psycopg 3) in the same run:

(a) one awaited ``persist`` vs a raw loop of one-row ``INSERT`` transactions
    of the same payload size (autocommit: one commit each);
(b) 256 concurrent tasks persisting (group commit: they share transactions)
    vs the raw loop's rate (one event per transaction, as an event store
    without group commit writes);
(c) replay of ``N`` events of one stream (``query().aggregate``, as the
    journal benchmark's replay) vs ``COPY ... TO STDOUT`` of the same rows
    and msgpack-decoding their payloads;
(d) the feed over the same events (``feed.query()``).

With the extra ``calliope[bench]`` (the Python ``eventsourcing`` library),
(a) and (b) are also shown beside ``eventsourcing``'s PostgreSQL recorder
writing one event per transaction (its ``insert_events`` of one stored
event of the same size, in a loop), on the same server in the same run
(its code lives in ``benchmarks.versus_eventsourcing``; ``benchmarks.versus``
compares whole applications, ``Application.save`` against ``persist``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import msgpack
import psycopg

import calliope
from benchmarks.journal import ItemAdded, concurrent_writers, sample, single_writer
from benchmarks.report import header, rate, row

_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


async def _raw_inserts(dsn: str, count: int, size: int) -> float:
    """Seconds for ``count`` one-row INSERT transactions of ``size`` bytes."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await connection.execute("CREATE TEMP TABLE raw_bench (n bigint, payload bytea)")
        payload = b"x" * size
        start = time.perf_counter()
        for n in range(count):
            await connection.execute("INSERT INTO raw_bench VALUES (%s, %s)", (n, payload))
        return time.perf_counter() - start


async def _fill(target: str, events: int) -> None:
    async with calliope.open(target, replica_id="filler") as app:
        stream = app.journal.event_stream("replay", ItemAdded)
        for start in range(0, events, 1000):
            await stream.persist_all([sample(n) for n in range(start, min(events, start + 1000))])


def _eventsourcing_rate(dsn: str, schema: str, count: int, size: int) -> float | None:
    """Events/s of ``eventsourcing``'s PostgreSQL recorder inserting one
    event per transaction; None without the library."""
    try:
        from benchmarks.versus_eventsourcing import recorder_rate
    except ImportError:
        return None
    return recorder_rate(dsn, schema, count, size)


def _count(total: int, event: ItemAdded) -> int:
    return total + 1


async def _replay(target: str) -> tuple[int, float, float]:
    async with calliope.open(target, replica_id="reader") as app:
        start = time.perf_counter()
        count = await app.journal.event_stream("replay", ItemAdded).query().aggregate(_count, 0)
        stream_seconds = time.perf_counter() - start
        start = time.perf_counter()
        async for _ in app.journal.feed(ItemAdded, prefix="replay").query():
            pass
        return count, stream_seconds, time.perf_counter() - start


def _copy_decode(dsn: str, schema: str) -> tuple[int, float]:
    """Events and seconds to COPY the batches out and decode their payloads."""
    start = time.perf_counter()
    events = 0
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        query = f'COPY (SELECT payload FROM "{schema}".batches WHERE stream_id = %s) TO STDOUT'
        with cursor.copy(query, (b"replay",)) as copy:
            copy.set_types(["bytea"])
            for (payload,) in copy.rows():
                fields = msgpack.unpackb(payload)
                events += len(fields[4])
    return events, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("CALLIOPE_POSTGRES_DSN", _DEFAULT))
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    target = f"{args.dsn}?schema={schema}"
    header(f"PostgreSQL at {args.dsn}, schema {schema}")
    try:
        size = 110
        raw = asyncio.run(_raw_inserts(args.dsn, 2000, size))
        ours = asyncio.run(single_writer(target, 2000))
        print(
            row(
                "(a) one awaited persist",
                rate(2000, ours),
                "events/s",
                rate(2000, raw),
                "1-row INSERT transactions",
            )
        )
        with psycopg.connect(args.dsn, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}_es"')
        theirs = _eventsourcing_rate(args.dsn, f"{schema}_es", 2000, size)
        if theirs is None:
            print("    (eventsourcing: not installed; pip install 'calliope[bench]' to compare)")
        else:
            print(
                row(
                    "(a) beside eventsourcing, 1 event/transaction",
                    rate(2000, ours),
                    "events/s",
                    theirs,
                    "eventsourcing recorder",
                )
            )
        many = asyncio.run(concurrent_writers(target, 256, 40))
        print(
            row(
                "(b) 256 concurrent tasks, persist",
                rate(256 * 40, many),
                "events/s",
                rate(2000, raw),
                "1-row INSERT transactions",
            )
        )
        if theirs is not None:
            print(
                row(
                    "(b) beside eventsourcing, 1 event/transaction",
                    rate(256 * 40, many),
                    "events/s",
                    theirs,
                    "eventsourcing recorder",
                )
            )
            print("    target: (b) >= 10x eventsourcing's one-event-per-transaction rate")
        start = time.perf_counter()
        asyncio.run(_fill(target, args.events))
        fill = time.perf_counter() - start
        count, stream_seconds, feed_seconds = asyncio.run(_replay(target))
        copied, copy_seconds = _copy_decode(args.dsn, schema)
        assert copied == count, (copied, count)
        print(
            row(
                f"(c) replay {count:,} events, aggregate",
                rate(count, stream_seconds),
                "events/s",
                rate(copied, copy_seconds),
                "COPY out + msgpack",
            )
        )
        print(
            row(
                "(d) the feed over them, feed.query()",
                rate(count, feed_seconds),
                "events/s",
                rate(copied, copy_seconds),
                "COPY out + msgpack",
            )
        )
        print(f"    (written with persist_all of 1,000: {fill:.1f} s)")
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}_es" CASCADE')


if __name__ == "__main__":
    main()
