"""Calliope beside the ``eventsourcing`` library and ``pycrdt``: the same workloads in one run.

Run: ``.venv/bin/python -m benchmarks.versus [--events N] [--chars N]
[--dsn DSN] [--quick]`` (needs the ``calliope[bench]`` extra; without
``eventsourcing`` or ``pycrdt`` the comparison that needs it is skipped
with one line saying so, and nothing is recorded for it).

Convention: every row prints Calliope's figure first and the other
library's as its baseline, and every figure is a rate (events/s,
characters/s, ops/s, characters per KiB of encoded state), so the ratio
Calliope/other above 1 always means Calliope does better.

Sizes (``--quick``: a tenth to a fiftieth, 1 round): (a) 1,000 awaited writes on
disk and PostgreSQL, 20,000 in memory; (b) 256 x 16 events on disk and
PostgreSQL, 256 x 80 in memory; (a) and (b) are medians of 3 rounds in
which the sides take turns at going first (the disk drifts); (c)
``--events`` (100,000); the CRDT ``--chars`` (20,000). Every timed part
starts after a ``gc.collect()`` (the garbage of the parts before it
otherwise slowed the RGA's by up to 20%).

Events and state (both sides): the journal benchmark's ``ItemAdded(sku,
quantity, price_cents)`` events (``benchmarks.journal.sample``), folded into
(events, quantity, cents). Calliope encodes them with msgpack;
``eventsourcing`` (9.x, default settings) with its JSON transcoder, each
event carrying its aggregate id, version and timestamp. On the
``eventsourcing`` side the events belong to ``Cart`` aggregates
(``benchmarks.versus_eventsourcing``): an explicitly declared event class
with an ``apply`` method (the documented equivalent of the ``@event``
decorator, and faster), saved with ``Application.save`` (the documented
way to store an aggregate's new events) and read back with
``repository.get`` (reads the aggregate's events and folds them).
``Application.save`` always checks that the version is new (the primary
key); Calliope's ``persist`` does that only when given
``expected_sequence``, which these workloads do not pass (passing it cost
nothing measurable in memory: within 3%).

1. Files: Calliope's file store (``calliope.open(directory)``, durability
   ``fsync``: an acknowledged write has been ``fdatasync``-ed) beside
   ``eventsourcing`` on SQLite (``PERSISTENCE_MODULE=eventsourcing.sqlite``,
   ``SQLITE_DBNAME`` a file in the same temporary directory). The library
   puts the database in WAL journal mode and leaves ``synchronous`` at
   SQLite's default, FULL (the header prints both as read from its
   connection): in WAL mode with FULL, every commit syncs the WAL, so both
   sides are durable at each acknowledged write.

   (a) one writer, one event at a time: Calliope ``await stream.persist(e)``
       on one stream; eventsourcing ``cart.add_item(...)`` then
       ``app.save(cart)`` on one aggregate (one event, one transaction per
       save).
   (b) many writers: Calliope 256 asyncio tasks, each persisting to its own
       stream, one awaited ``persist`` at a time; eventsourcing 8 threads,
       each saving its own aggregate, one event per save. Its SQLite
       recorder lets threads write (its pool hands out one writer
       connection at a time and every commit syncs), so threads are the
       best concurrency it has; 1 to 15 threads measured within 15% of each
       other here. Same number of events on both sides. A second row has
       Calliope's 256 tasks all persisting to one stream, beside the same
       eventsourcing figure: the file store's group commit is per stream
       (each stream has its own log and its own committer, which writes and
       syncs a lone request on the event loop), so writers on distinct
       streams share no fsync, and only the one-stream row shows group
       commit.
   (c) replay: N events of one stream / one aggregate (written beforehand
       in batches of 10,000: ``persist_all`` / a save of 10,000 pending
       events), read by a newly opened app and folded: Calliope
       ``stream.query().aggregate(add, ...)``, eventsourcing
       ``app.repository.get(id)`` (no snapshots, no cache: its defaults).
       Both sides' final states are checked equal.
2. Memory: Calliope ``memory://name`` beside eventsourcing's POPO recorders
   (``PERSISTENCE_MODULE=eventsourcing.popo``): the same (a), (b) and (c);
   (c) in the app that wrote (a second POPO app would be empty). No I/O, so
   (b) measures what concurrency costs in CPU (threads for eventsourcing,
   tasks for Calliope).
3. PostgreSQL, with ``--dsn`` (default ``$CALLIOPE_POSTGRES_DSN``; none: the
   section is skipped): Calliope in a fresh schema (``?schema=``),
   eventsourcing in another (``POSTGRES_SCHEMA``, with a pool of 8
   connections and no overflow); a fresh pair of schemas per measurement,
   all dropped at the end. The same (a), (b) and (c). The library's
   application recorder locks its table (EXCLUSIVE) in every insert
   transaction to keep notification ids in commit order, so its concurrent
   writers take turns (1 to 15 threads measured within 25% here);
   Calliope's store groups concurrent appends of all streams into one
   transaction.
4. Sequence CRDT: Calliope's ``RGA`` (pure Python) beside ``pycrdt``'s
   ``Text`` (Yjs in Rust), one character per operation, the same characters
   at the same indexes (a fixed seed); every final text is checked equal to
   the others and to a plain ``list.insert`` replay.

   (a) one replica typing N characters at the end, then N at random
       positions of a document growing from empty: Calliope prepare
       (``insert(index, ch)``) + ``tag_operations`` + ``effect`` per
       character (as ``benchmarks.crdt``), leaving a tagged operation ready
       to send; pycrdt ``text.insert(index, ch)``, one transaction each (no
       update is encoded unless someone observes the document). A line
       under each row gives the cost per character in the first and last
       tenth of the document: pycrdt's grows with the document's length
       (and its fragmentation: random positions), so the ratio depends on
       ``--chars``.
   (b) a second replica applying the first one's N operations: Calliope
       ``effect`` of the tagged operations (already decoded objects), and
       also from msgpack bytes (``msgpack.unpackb`` + the CRDT codec's
       ``decode_tagged`` + ``effect``); pycrdt ``apply_update`` of the N
       one-transaction updates recorded from the typing document (bytes: its
       decoding is included).
   (c) encoded size of the whole state (tombstones would be included; there
       are none): Calliope ``msgpack.packb(CRDTCodec().encode_state(rga))``
       (what a CRDT snapshot stores), pycrdt ``doc.get_update()``, as
       characters per KiB (higher: smaller encoding; the ratio is
       pycrdt's bytes / Calliope's). The byte counts are printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from types import ModuleType

import calliope
from benchmarks.journal import (
    ItemAdded,
    Totals,
    add,
    concurrent_writers,
    sample,
    single_writer,
)
from benchmarks.report import header, installed_version, rate, row
from benchmarks.versus_pycrdt import crdt_section

SKIP = "pip install 'calliope[bench]' to compare"
THREADS = 8
TASKS = 256


class Sizes:
    """How much each workload does: the defaults, or ``--quick``'s."""

    def __init__(self, events: int, chars: int, quick: bool) -> None:
        self.replay = events
        self.chars = chars
        self.rounds = 1 if quick else 3
        # (a) awaited writes per round, on disk and in memory
        self.single_disk = 100 if quick else 1_000
        self.single_memory = 1_000 if quick else 20_000
        # (b) events per task (256 tasks, or 8 threads writing as many events)
        self.per_task_disk = 2 if quick else 16
        self.per_task_memory = 8 if quick else 80


# -- Calliope's side -------------------------------------------------------------


async def calliope_concurrent(target: str, tasks: int, per_task: int) -> float:
    """Seconds for ``tasks`` tasks each persisting ``per_task`` events, one
    awaited ``persist`` at a time, each to its own stream."""
    async with calliope.open(target, replica_id="group") as app:
        streams = [app.journal.event_stream(f"writer-{task}", ItemAdded) for task in range(tasks)]
        await asyncio.gather(*(stream.persist(sample(0)) for stream in streams))

        async def writer(task: int) -> None:
            stream = streams[task]
            for n in range(per_task):
                await stream.persist(sample(task * per_task + n))

        start = time.perf_counter()
        await asyncio.gather(*(writer(task) for task in range(tasks)))
        return time.perf_counter() - start


async def calliope_replay(target: str, events: int) -> tuple[float, Totals]:
    """Write ``events`` events to one stream (``persist_all`` of 10,000),
    then read them back through a second app opened on the same store and
    fold them; the seconds of that fold and its result."""
    async with calliope.open(target, replica_id="filler") as app:
        stream = app.journal.event_stream("replay", ItemAdded)
        for first in range(0, events, 10_000):
            batch = [sample(n) for n in range(first, min(events, first + 10_000))]
            await stream.persist_all(batch)
        # Opened while the writer is still open: a memory store lives as long as an app on it.
        async with calliope.open(target, replica_id="reader") as reader:
            replayed = reader.journal.event_stream("replay", ItemAdded)
            gc.collect()
            start = time.perf_counter()
            totals = await replayed.query().aggregate(add, (0, 0, 0))
            return time.perf_counter() - start, totals


def expected_totals(events: int) -> Totals:
    totals: Totals = (0, 0, 0)
    for n in range(events):
        totals = add(totals, sample(n))
    return totals


# -- event stores: a, b, c ---------------------------------------------------------


def medians(rounds: int, *runs: Callable[[int], float]) -> list[float]:
    """The median seconds of each ``run(turn)`` over ``rounds`` rounds, the
    runs taking turns at going first (each after a ``gc.collect()``)."""
    seconds: list[list[float]] = [[] for _ in runs]
    for turn in range(rounds):
        for index in range(len(runs)):
            which = (turn + index) % len(runs)
            gc.collect()
            seconds[which].append(runs[which](turn))
    return [statistics.median(each) for each in seconds]


def store_rows(
    es: ModuleType,
    sizes: Sizes,
    *,
    prefix: str,
    label: str,
    target: Callable[[str], str],
    es_env: Callable[[str], dict[str, str]],
    reopen: bool,
    single: int,
    per_task: int,
) -> None:
    """Figures (a), (b), (c) for one kind of store: ``target(name)`` is a
    new Calliope store, ``es_env(name)`` a new eventsourcing one; ``reopen``:
    replay through a new eventsourcing application on the same store."""
    ours, theirs = medians(
        sizes.rounds,
        lambda turn: asyncio.run(single_writer(target(f"a{turn}"), single)),
        lambda turn: es.timed_app(es_env(f"a{turn}"), lambda app: es.single_writer(app, single)),
    )
    print(
        row(
            f"{prefix} (a) 1 writer, awaited persist",
            rate(single, ours),
            "events/s",
            rate(single, theirs),
            f"eventsourcing {label}: Application.save, 1 aggregate, 1 event per save",
        )
    )

    total = TASKS * per_task
    per_thread = total // THREADS
    ours, shared, theirs = medians(
        sizes.rounds,
        lambda turn: asyncio.run(calliope_concurrent(target(f"b{turn}"), TASKS, per_task)),
        lambda turn: asyncio.run(concurrent_writers(target(f"s{turn}"), TASKS, per_task)),
        lambda turn: es.timed_app(
            es_env(f"b{turn}"), lambda app: es.threaded_writers(app, THREADS, per_thread)
        ),
    )
    baseline = f"eventsourcing {label}: {THREADS} threads, an aggregate each, 1 event per save"
    print(
        row(
            f"{prefix} (b) {TASKS} tasks, a stream each",
            rate(total, ours),
            "events/s",
            rate(total, theirs),
            baseline,
        )
    )
    print(
        row(
            f"{prefix} (b) {TASKS} tasks, one shared stream",
            rate(total, shared),
            "events/s",
            rate(total, theirs),
            baseline,
        )
    )

    events = sizes.replay
    seconds, totals = asyncio.run(calliope_replay(target("c"), events))
    app = es.application(es_env("c"))
    try:
        start = time.perf_counter()
        cart_id = es.fill(app, events)
        fill_seconds = time.perf_counter() - start
        if reopen:
            app.close()
            app = es.application(es_env("c"))
        their_seconds, their_totals = es.replay(app, cart_id)
    finally:
        app.close()
    assert totals == their_totals == expected_totals(events), (totals, their_totals)
    print(
        row(
            f"{prefix} (c) replay {events:,} events, fold",
            rate(events, seconds),
            "events/s",
            rate(events, their_seconds),
            f"eventsourcing {label}: repository.get of 1 aggregate",
        )
    )
    print(f"    (eventsourcing wrote them in saves of 10,000 events: {fill_seconds:.1f} s)")


def files_section(es: ModuleType, sizes: Sizes) -> None:
    import sqlite3

    with tempfile.TemporaryDirectory(dir=os.environ.get("CALLIOPE_BENCH_DIR")) as directory:
        probe = es.application(es.sqlite_env(os.path.join(directory, "probe.db")))
        try:
            synchronous, journal_mode = es.sqlite_settings(probe)
        finally:
            probe.close()
        header(
            f"files in {directory}: Calliope's file store (durability fsync) vs eventsourcing "
            f"{installed_version('eventsourcing')} on SQLite {sqlite3.sqlite_version} "
            f"(journal_mode={journal_mode}, synchronous={synchronous})"
        )
        store_rows(
            es,
            sizes,
            prefix="files",
            label="SQLite",
            target=lambda name: os.path.join(directory, f"calliope-{name}"),
            es_env=lambda name: es.sqlite_env(os.path.join(directory, f"es-{name}.db")),
            reopen=True,
            single=sizes.single_disk,
            per_task=sizes.per_task_disk,
        )


def memory_section(es: ModuleType, sizes: Sizes) -> None:
    header(
        f"memory: Calliope memory:// vs eventsourcing {installed_version('eventsourcing')} POPO "
        f"(in-memory recorders)"
    )
    run = uuid.uuid4().hex[:8]
    store_rows(
        es,
        sizes,
        prefix="memory",
        label="POPO",
        target=lambda name: f"memory://versus-{run}-{name}",
        es_env=lambda name: es.popo_env(),
        reopen=False,
        single=sizes.single_memory,
        per_task=sizes.per_task_memory,
    )


def postgres_section(es: ModuleType, sizes: Sizes, dsn: str) -> None:
    try:
        import psycopg
    except ImportError:
        print(
            "PostgreSQL comparison skipped: psycopg is not installed (pip install 'calliope[dev]')"
        )
        return
    schema = f"versus_{uuid.uuid4().hex[:12]}"
    header(
        f"PostgreSQL at {dsn}: Calliope vs eventsourcing {installed_version('eventsourcing')}, "
        f"each measurement in a fresh schema {schema}_*"
    )
    made: list[str] = []

    def fresh(name: str) -> str:
        """The schema of one measurement (each dropped at the end)."""
        if f"{schema}_{name}" not in made:
            made.append(f"{schema}_{name}")
        return f"{schema}_{name}"

    def es_env(name: str) -> dict[str, str]:
        es_schema = fresh(f"es_{name}")
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{es_schema}"')
        env: dict[str, str] = es.postgres_env(dsn, es_schema, THREADS)
        return env

    try:
        store_rows(
            es,
            sizes,
            prefix="PostgreSQL",
            label="PostgreSQL",
            target=lambda name: f"{dsn}{'&' if '?' in dsn else '?'}schema={fresh(name)}",
            es_env=es_env,
            reopen=True,
            single=sizes.single_disk,
            per_task=sizes.per_task_disk,
        )
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            for name in made:
                connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _optional(module: str, comparison: str) -> ModuleType | None:
    """The module, or None after one line saying the comparison is skipped."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        print(f"{comparison} comparison skipped: {error} ({SKIP})")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, help="events replayed in (c) (default 100,000)")
    parser.add_argument("--chars", type=int, help="characters typed (default 20,000)")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("CALLIOPE_POSTGRES_DSN"),
        help="PostgreSQL to compare on (default: $CALLIOPE_POSTGRES_DSN; none: skipped)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    args = parser.parse_args()
    sizes = Sizes(
        events=args.events or (2_000 if args.quick else 100_000),
        chars=args.chars or (1_000 if args.quick else 20_000),
        quick=args.quick,
    )
    start = time.perf_counter()
    es = _optional("benchmarks.versus_eventsourcing", "eventsourcing")
    if es is not None:
        files_section(es, sizes)
        memory_section(es, sizes)
        if args.dsn:
            postgres_section(es, sizes, args.dsn)
        else:
            print("\nPostgreSQL comparison skipped: no --dsn and no $CALLIOPE_POSTGRES_DSN")
    pycrdt = _optional("pycrdt", "pycrdt")
    if pycrdt is not None:
        crdt_section(pycrdt, sizes.chars)
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
