"""Contract cases for plain logs (``StorePort.plain``, PlainLogPort).

Appending: sequences from 1, versions from next_batch, the items and
timestamp_us stored as plain data, empty appends, expected_sequence
(optimistic concurrency), last_sequence per stream. Reading: inclusive
ranges, batches cut at the bounds, chunked reads of long logs, a second
store on the same storage, racing appends, interleaved writers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from calliope.core.replication import RecordBatch
from calliope.errors import ConcurrencyError
from calliope.shell.ports import NewEvent
from calliope.testing.contract._support import (
    _T0,
    StoreFactory,
    _case,
    _collect,
    _events,
    _expect,
    _expect_batch,
    _expect_equal,
    _expect_events,
    _ExpectedLog,
    _flatten,
    _Ids,
    _raises,
    _read,
    opened,
)

# -- plain logs: appending -----------------------------------------------------


@_case
async def plain_append_starts_at_sequence_one(new_store: StoreFactory) -> None:
    """The first batch of a plain log gets sequence 1 and version {writer: 1}
    for its first event; the returned batch holds the events and the
    timestamp_us given."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream = ids("s")
        expected = _ExpectedLog().add("w", _events(2), _T0)
        batch = await store.plain.append(
            stream, "w", _events(2), expected_sequence=None, timestamp_us=_T0
        )
        _expect_batch(batch, expected, "the first plain append")
        _expect_equal(dict(expected.version), {"w": 1}, "the first version")
        _expect_equal(await store.plain.last_sequence(stream), 2, "last_sequence after 2 events")


@_case
async def plain_append_continues_the_log(new_store: StoreFactory) -> None:
    """A later batch continues the sequences, its version following the
    log's last event (calliope.core.replication.next_batch), with its own
    timestamp_us."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream, log = ids("s"), _ExpectedLog()
        for round_, (count, ts) in enumerate([(2, _T0), (3, _T0 + 7), (1, _T0 + 5)]):
            expected = log.add("w", _events(count, 10 * round_), ts)
            batch = await store.plain.append(
                stream, "w", _events(count, 10 * round_), expected_sequence=None, timestamp_us=ts
            )
            _expect_batch(batch, expected, f"plain append number {round_ + 1}")
        _expect_equal(await store.plain.last_sequence(stream), 6, "last_sequence")
        _expect_events(await _read(store, stream), log.events(), "reading the log back")


@_case
async def plain_items_come_back_as_stored_plain_data(new_store: StoreFactory) -> None:
    """Items are stored as plain data (str, int, float, bool, None, bytes,
    lists, maps) and read back equal, as (type_name, schema_version, data),
    with the batch's timestamp_us; the stored data is a copy, not the caller's
    objects."""
    ids = _Ids()
    data: dict[str, Any] = {
        "n": 1,
        "text": "h\u00e9llo \u2713",
        "list": [1, "two", None, True, 2.5],
        "nested": {"k": [{"deep": -(2**40)}], "empty": {}},
        "bytes": b"\x00\xff",
    }
    events = [NewEvent("some.type", 3, data), NewEvent("other", 1, [1, 2]), NewEvent("z", 1, None)]
    expected = [("some.type", 3, data), ("other", 1, [1, 2]), ("z", 1, None)]
    async with opened(new_store) as store:
        stream = ids("s")
        await store.plain.append(stream, "w", events, expected_sequence=None, timestamp_us=_T0 + 1)
        copy = {**data, "list": list(data["list"])}
        data["n"] = 999
        data["list"].append("mutated")
        read = await _read(store, stream)
        _expect_equal(
            [e.item for e in read], [(*expected[0][:2], copy), *expected[1:]], "items read back"
        )
        _expect_equal([e.timestamp_us for e in read], [_T0 + 1] * 3, "timestamp_us read back")


@_case
async def plain_empty_append_returns_none(new_store: StoreFactory) -> None:
    """Appending no events returns None and writes nothing."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream = ids("s")
        result = await store.plain.append(stream, "w", [], expected_sequence=None, timestamp_us=_T0)
        _expect_equal(result, None, "append of no events to an empty log")
        await store.plain.append(stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0)
        result = await store.plain.append(stream, "w", [], expected_sequence=None, timestamp_us=_T0)
        _expect_equal(result, None, "append of no events")
        _expect_equal(await store.plain.last_sequence(stream), 1, "last_sequence")
        _expect_equal(len(await _read(store, stream)), 1, "events stored")


@_case
async def plain_expected_sequence_mismatch_writes_nothing(new_store: StoreFactory) -> None:
    """An append whose expected_sequence differs from the log's last sequence
    raises ConcurrencyError (with .expected and .actual) and writes nothing."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream = ids("s")
        error = await _raises(
            ConcurrencyError,
            store.plain.append(stream, "w", _events(1), expected_sequence=1, timestamp_us=_T0),
            "append with expected_sequence=1 to an empty log",
        )
        assert isinstance(error, ConcurrencyError)
        _expect_equal((error.expected, error.actual), (1, 0), "ConcurrencyError (expected, actual)")
        _expect_equal(
            await store.plain.last_sequence(stream), 0, "last_sequence after a refused append"
        )
        await store.plain.append(stream, "w", _events(2), expected_sequence=None, timestamp_us=_T0)
        for wrong in (0, 1, 3):
            error = await _raises(
                ConcurrencyError,
                store.plain.append(
                    stream, "w", _events(2), expected_sequence=wrong, timestamp_us=_T0
                ),
                f"append with expected_sequence={wrong} to a log at 2",
            )
            assert isinstance(error, ConcurrencyError)
            _expect_equal(
                (error.expected, error.actual), (wrong, 2), "ConcurrencyError (expected, actual)"
            )
        _expect_equal(await store.plain.last_sequence(stream), 2, "last_sequence after refusals")
        _expect_equal(len(await _read(store, stream)), 2, "events stored after refusals")


@_case
async def plain_expected_sequence_match_writes(new_store: StoreFactory) -> None:
    """An append whose expected_sequence equals the log's last sequence
    (0 for an empty log) is written."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream, log = ids("s"), _ExpectedLog()
        expected = log.add("w", _events(2), _T0)
        batch = await store.plain.append(
            stream, "w", _events(2), expected_sequence=0, timestamp_us=_T0
        )
        _expect_batch(batch, expected, "append with expected_sequence=0 to an empty log")
        expected = log.add("v", _events(1, 5), _T0 + 1)
        batch = await store.plain.append(
            stream, "v", _events(1, 5), expected_sequence=2, timestamp_us=_T0 + 1
        )
        _expect_batch(batch, expected, "append with expected_sequence=2 to a log at 2")
        _expect_equal(await store.plain.last_sequence(stream), 3, "last_sequence")


@_case
async def plain_last_sequence_is_per_stream(new_store: StoreFactory) -> None:
    """last_sequence is 0 for an unknown stream, and appends to one stream
    leave the others alone."""
    ids = _Ids()
    async with opened(new_store) as store:
        a, b = ids("a"), ids("b")
        _expect_equal(await store.plain.last_sequence(a), 0, "last_sequence of an unknown stream")
        await store.plain.append(a, "w", _events(3), expected_sequence=None, timestamp_us=_T0)
        await store.plain.append(b, "w", _events(1), expected_sequence=None, timestamp_us=_T0)
        _expect_equal(await store.plain.last_sequence(a), 3, "last_sequence of stream a")
        _expect_equal(await store.plain.last_sequence(b), 1, "last_sequence of stream b")
        _expect_equal(await store.plain.last_sequence(ids("c")), 0, "last_sequence of stream c")
        _expect_equal([e.sequence for e in await _read(store, b)], [1], "sequences of stream b")


# -- plain logs: reading -------------------------------------------------------


@_case
async def plain_read_ranges_are_inclusive(new_store: StoreFactory) -> None:
    """read(stream, from, to) yields the events with from <= sequence <= to
    (to None: no upper bound); from beyond the end, from > to, or an unknown
    stream yield nothing."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream, log = ids("s"), _ExpectedLog()
        for count, start in [(3, 0), (3, 3), (4, 6)]:
            log.add("w", _events(count, start), _T0 + start)
            await store.plain.append(
                stream, "w", _events(count, start), expected_sequence=None, timestamp_us=_T0 + start
            )
        for first, last in [
            (1, None),
            (1, 10),
            (1, 100),
            (3, 5),
            (4, 4),
            (3, 7),
            (9, None),
            (10, 10),
        ]:
            _expect_events(
                await _read(store, stream, first, last),
                log.events(first, last),
                f"read({first}, {last})",
            )
        for first, last in [(11, None), (11, 20), (5, 4)]:
            _expect_events(await _read(store, stream, first, last), [], f"read({first}, {last})")
        _expect_events(await _read(store, ids("unknown")), [], "read of an unknown stream")


@_case
async def plain_read_slices_a_batch(new_store: StoreFactory) -> None:
    """A read whose bounds cut a batch yields the part within them as a batch
    whose first_sequence and version are those of its first event
    (RecordBatch.sliced)."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream, log = ids("s"), _ExpectedLog()
        log.add("v", _events(1), _T0)
        await store.plain.append(stream, "v", _events(1), expected_sequence=None, timestamp_us=_T0)
        full = log.add("w", _events(5, 1), _T0 + 1)  # sequences 2..6
        await store.plain.append(
            stream, "w", _events(5, 1), expected_sequence=None, timestamp_us=_T0 + 1
        )
        for first, last in [(3, 4), (4, None), (2, 5), (6, 6)]:
            batches = await _collect(
                store.plain.read(stream, first, last), f"read({first}, {last})"
            )
            want = full.sliced(first, last)
            assert want is not None
            _expect_equal(len(batches), 1, f"batches of read({first}, {last})")
            got = batches[0]
            _expect_equal(
                (got.first_sequence, dict(got.version), [tuple(i) for i in got.items]),
                (want.first_sequence, dict(want.version), [tuple(i) for i in want.items]),
                f"(first_sequence, version, items) of the batch read({first}, {last}) cut",
            )


@_case
async def plain_read_yields_chunks(new_store: StoreFactory) -> None:
    """A read of a long log yields non-empty lists of batches, in order,
    together every event exactly once (also from and to the middle, across
    whatever storage units the adapter rolls over)."""
    ids = _Ids()
    count = 600
    async with opened(new_store) as store:
        stream, log = ids("s"), _ExpectedLog()
        for n in range(count):
            event = [NewEvent("t", 1, {"n": n, "pad": "x" * 24})]
            log.add("w", event, _T0 + n)
            await store.plain.append(
                stream, "w", event, expected_sequence=None, timestamp_us=_T0 + n
            )
        chunks = 0
        seen: list[RecordBatch] = []
        async for chunk in store.plain.read(stream, 1, None):
            chunks += 1
            _expect(
                isinstance(chunk, list) and len(chunk) > 0,
                f"chunk {chunks} of the read is {chunk!r}, not a non-empty list",
            )
            seen.extend(chunk)
        _expect_events(_flatten(seen), log.events(), f"the events of {chunks} chunks")
        for first, last in [(250, 260), (599, None), (1, 300)]:
            _expect_events(
                await _read(store, stream, first, last),
                log.events(first, last),
                f"read({first}, {last})",
            )


@_case
async def plain_second_store_sees_the_first_writes(new_store: StoreFactory) -> None:
    """A second store on the same storage reads what the first wrote, and its
    appends continue the same log (sequences and versions), seen by the first."""
    ids = _Ids()
    async with opened(new_store) as first, opened(new_store) as second:
        stream, log = ids("s"), _ExpectedLog()
        log.add("w1", _events(3), _T0)
        await first.plain.append(stream, "w1", _events(3), expected_sequence=None, timestamp_us=_T0)
        _expect_equal(
            await second.plain.last_sequence(stream), 3, "last_sequence in the second store"
        )
        _expect_events(await _read(second, stream), log.events(), "the second store's read")
        expected = log.add("w2", _events(2, 3), _T0 + 1)
        batch = await second.plain.append(
            stream, "w2", _events(2, 3), expected_sequence=3, timestamp_us=_T0 + 1
        )
        _expect_batch(batch, expected, "the second store's append")
        _expect_events(await _read(first, stream), log.events(), "the first store's read")
        await _raises(
            ConcurrencyError,
            first.plain.append(stream, "w1", _events(1), expected_sequence=3, timestamp_us=_T0),
            "the first store's append with a stale expected_sequence=3 (the log is at 5)",
        )


@_case
async def plain_concurrent_appends_all_land(new_store: StoreFactory) -> None:
    """Appends racing from two stores are all kept, contiguously, each once;
    of racing appends expecting the same sequence exactly one is written."""
    ids = _Ids()
    async with opened(new_store) as a, opened(new_store) as b:
        stream = ids("s")
        calls = [
            store.plain.append(
                stream, f"w{k}", _events(1, 100 * k + n), expected_sequence=None, timestamp_us=_T0
            )
            for n in range(10)
            for k, store in enumerate((a, b))
        ]
        batches = await asyncio.gather(*calls)
        sequences = sorted(batch.first_sequence for batch in batches if batch is not None)
        _expect_equal(sequences, list(range(1, 21)), "sequences of 20 racing appends")
        read = await _read(a, stream)
        _expect_equal([e.sequence for e in read], list(range(1, 21)), "sequences read back")
        _expect_equal(
            sorted(e.item[2]["n"] for e in read),
            sorted(n + 100 * k for n in range(10) for k in (0, 1)),
            "the data of the racing appends read back",
        )
        racing = await asyncio.gather(
            a.plain.append(stream, "w0", _events(1), expected_sequence=20, timestamp_us=_T0),
            b.plain.append(stream, "w1", _events(1), expected_sequence=20, timestamp_us=_T0),
            return_exceptions=True,
        )
        won = [r for r in racing if isinstance(r, RecordBatch)]
        lost = [r for r in racing if isinstance(r, ConcurrencyError)]
        _expect(
            len(won) == 1 and len(lost) == 1,
            f"two appends racing with expected_sequence=20: one should be written and one "
            f"raise ConcurrencyError, got {racing!r}",
        )
        _expect_equal(await b.plain.last_sequence(stream), 21, "last_sequence after the race")


@_case
async def plain_writers_interleave(new_store: StoreFactory) -> None:
    """Several writers append to one plain log in turn: sequences stay
    contiguous and each version counts every writer's events so far."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream, log = ids("s"), _ExpectedLog()
        turns = [("w1", 2), ("w2", 1), ("w1", 1), ("w3", 2), ("w2", 2)]
        for turn, (writer, count) in enumerate(turns):
            expected = log.add(writer, _events(count, 10 * turn), _T0 + turn)
            batch = await store.plain.append(
                stream,
                writer,
                _events(count, 10 * turn),
                expected_sequence=None,
                timestamp_us=_T0 + turn,
            )
            _expect_batch(batch, expected, f"append {turn + 1} (by {writer})")
        _expect_equal(log.version, {"w1": 3, "w2": 3, "w3": 2}, "the model's last version")
        read = await _read(store, stream)
        _expect_events(read, log.events(), "the interleaved log read back")
        _expect_equal(read[-1].version, {"w1": 3, "w2": 3, "w3": 2}, "the last event's version")
