"""Contract cases for the store's feed (``StorePort.feed``, FeedPort).

The feed holds every batch of every stream once, numbered in the order
batches became visible: each log's order, and a replica's batch after the
batches it observed. Reading from an entry number gives exactly the entries
from there; a prefix passes over other streams; a watcher wakes on appends.
"""

from __future__ import annotations

from calliope.shell.ports import FeedEntry, RecordBatch, StorePort
from calliope.testing.contract._support import (
    _T0,
    StoreFactory,
    _case,
    _events,
    _expect,
    _expect_equal,
    _Ids,
    _waiting,
    _woken,
    opened,
)


async def _whole_feed(
    store: StorePort, prefix: str | None, limit: int, start: int = 0
) -> list[FeedEntry]:
    """Every entry of the feed under ``prefix`` from entry ``start``, read a
    page of ``limit`` events at a time."""
    found: list[FeedEntry] = []
    while True:
        page = await store.feed.read_feed(start, prefix, limit=limit)
        _expect(page.next_entry >= start, f"read_feed went back from {start} to {page.next_entry}")
        found.extend(page.entries)
        if not page.more:
            return found
        start = page.next_entry


@_case
async def feed_holds_every_batch_once_in_visibility_order(new_store: StoreFactory) -> None:
    """Batches appended by two stores to plain and replica logs are each in
    the feed once, with their events, in ascending entry numbers that their
    batches carry (``feed_entry``); each log's batches in log order; a
    replica's batch after the batch it observed; pages of any size agree."""
    ids = _Ids()
    prefix = ids("feed") + "/"
    async with opened(new_store) as one, opened(new_store) as two:
        written: list[tuple[str, str | None, RecordBatch | None]] = []
        for n in range(6):
            store = one if n % 2 else two
            stream = f"{prefix}plain-{n % 3}"
            batch = await store.plain.append(
                stream, "w", _events(1 + n % 2, n), expected_sequence=None, timestamp_us=_T0
            )
            written.append((stream, None, batch))
        replicated = f"{prefix}replicated"
        first = await one.replicated.append_replica(
            replicated, one.replica_id, _events(2), observed={}, timestamp_us=_T0
        )
        written.append((replicated, one.replica_id, first))
        assert first is not None
        second = await two.replicated.append_replica(
            replicated,
            two.replica_id,
            _events(1),
            observed={one.replica_id: first.last_sequence},
            timestamp_us=_T0,
        )
        written.append((replicated, two.replica_id, second))
        for limit in (1, 2, 1000):
            entries = await _whole_feed(one, prefix, limit)
            what = f"the feed read {limit} events at a time"
            _expect_equal(
                [(e.stream_id, e.replica_id, e.batch.first_sequence) for e in entries],
                [(s, r, b.first_sequence) for s, r, b in written if b is not None],
                f"{what}: (stream, replica, first sequence) of each batch, in feed order",
            )
            for entry, (_, _, batch) in zip(entries, written, strict=True):
                assert batch is not None
                _expect_equal(
                    [tuple(item) for item in entry.batch.items],
                    [tuple(item) for item in batch.items],
                    f"{what}: the events of entry {entry.entry}",
                )
                _expect_equal(entry.batch.feed_entry, entry.entry, f"{what}: feed_entry")
            numbers = [e.entry for e in entries]
            _expect_equal(numbers, sorted(set(numbers)), f"{what}: entry numbers ascending")


@_case
async def feed_resumes_at_any_entry_and_passes_over_other_streams(
    new_store: StoreFactory,
) -> None:
    """Reading from entry ``n`` gives exactly the entries numbered ``n`` or
    more; streams outside the prefix, and Calliope's own ``$calliope/``
    streams unless the prefix names them, are left out."""
    ids = _Ids()
    prefix = ids("resume") + "/"
    async with opened(new_store) as store:
        for n in range(5):
            for stream in (f"{prefix}{n}", ids(f"other-{n}"), f"$calliope/{prefix}{n}"):
                await store.plain.append(
                    stream, "w", _events(1, n), expected_sequence=None, timestamp_us=_T0
                )
        entries = await _whole_feed(store, prefix, 100)
        _expect_equal(
            [e.stream_id for e in entries],
            [f"{prefix}{n}" for n in range(5)],
            "the streams of the feed under the prefix",
        )
        own = await _whole_feed(store, f"$calliope/{prefix}", 100)
        _expect_equal(len(own), 5, "entries of $calliope/ streams under a $calliope/ prefix")
        everything = await _whole_feed(store, None, 100_000)
        _expect(
            not any(e.stream_id.startswith("$calliope/") for e in everything),
            "the feed without a prefix holds no $calliope/ stream",
        )
        for index, entry in enumerate(entries):
            rest = await _whole_feed(store, prefix, 2, entry.entry)
            _expect_equal(
                [e.entry for e in rest],
                [e.entry for e in entries[index:]],
                f"the entries read from entry {entry.entry}",
            )


@_case
async def feed_watcher_wakes_on_append_by_another_store(new_store: StoreFactory) -> None:
    """A feed watcher wakes after another store appends to any stream."""
    ids = _Ids()
    async with opened(new_store) as watching, opened(new_store) as writing:
        for round_ in range(2):
            async with watching.feed.watch_feed() as watcher, _waiting(watcher) as task:
                await writing.plain.append(
                    ids(f"s{round_}"), "w", _events(1), expected_sequence=None, timestamp_us=_T0
                )
                await _woken(task, f"another store appended (watch {round_ + 1})")
