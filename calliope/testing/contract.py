"""The port contract suite: the cases every storage adapter must pass.

Each case is an async function ``case(new_store)`` checking one promise of
the ports in :mod:`calliope.shell.ports` (plain logs, replica logs, change
notification, snapshots, the store's lifecycle and leases) with plain data,
below the public API. Our adapters (memory, files) run it, and so should
yours: the same cases, one adapter-specific factory.

A factory (:data:`StoreFactory`) returns a fresh, unopened store on each call.
Two calls must give two stores on the **same** backing storage (the same
memory name, directory or database), each with **its own replica id**, so
that a case can open both at once and check that one sees what the other
wrote or holds. Cases use ids unique to each run, so the storage may be
shared between cases (a fresh one per test works too). Stores a case opens
are closed when it ends, passing or failing (:func:`opened`).

Run it with pytest (nothing here imports pytest)::

    import pytest

    from calliope.testing import contract

    @pytest.mark.parametrize("case", contract.CASES, ids=lambda c: c.__name__)
    async def test_contract(case: contract.ContractCase) -> None:
        await contract.run_case(case, my_factory)

where ``my_factory`` is a :data:`StoreFactory`, for example
``lambda: MyStore(dsn, replica_id=f"r-{next(counter)}")``. A failure is a
plain :class:`AssertionError` whose message says what the port did wrong;
the case's docstring states the contract it checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple

from calliope.core.replication import RecordBatch, ReplicaPage, next_batch
from calliope.errors import AppClosedError, ConcurrencyError, ReplicaInUseError
from calliope.shell.ports import NewEvent, SnapshotRecord, StorePort, Watcher

__all__ = [
    "CASES",
    "WAKE_SECONDS",
    "ContractCase",
    "StoreFactory",
    "opened",
    "run_case",
]

StoreFactory = Callable[[], StorePort]
"""A fresh, unopened store on each call: every call on the same backing
storage, each store with its own replica id."""

ContractCase = Callable[[StoreFactory], Awaitable[None]]
"""One case: ``async def case(new_store: StoreFactory) -> None``."""

CASES: list[ContractCase] = []
"""Every case, in the order they are defined."""

WAKE_SECONDS = 5.0
"""How long a watcher may take to notice an append (adapters may poll)."""

QUIET_SECONDS = 0.3
"""How long a watcher that must not wake is watched."""

CASE_SECONDS = 60.0
"""The default bound on one case's run time (:func:`run_case`)."""


def _case(function: ContractCase) -> ContractCase:
    if not function.__doc__:
        raise TypeError(f"contract case {function.__name__} needs a docstring")
    CASES.append(function)
    return function


@contextlib.asynccontextmanager
async def _opened(new_store: StoreFactory) -> AsyncIterator[StorePort]:
    store = new_store()
    await store.open()
    try:
        yield store
    finally:
        await store.aclose()


def opened(new_store: StoreFactory) -> AbstractAsyncContextManager[StorePort]:
    """A new store from the factory, open inside the block and closed after
    it (also when the block fails)."""
    return _opened(new_store)


async def run_case(
    case: ContractCase, new_store: StoreFactory, *, timeout: float = CASE_SECONDS
) -> None:
    """Run one case on stores from ``new_store``. Raises AssertionError when
    the adapter breaks the contract, also when the case hangs past ``timeout``."""
    timer = asyncio.timeout(timeout)
    try:
        async with timer:
            await case(new_store)
    except TimeoutError as error:
        if not timer.expired():  # raised by the adapter, not by the bound
            raise
        name = getattr(case, "__name__", repr(case))
        raise AssertionError(
            f"contract case {name} did not finish within {timeout}s: a port call hangs"
        ) from error


# -- helpers -------------------------------------------------------------------


class _Ids:
    """Ids unique to one run of a case: ``ids("s")`` is ``"s-<token>"``."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex[:12]

    def __call__(self, name: str) -> str:
        return f"{name}-{self.token}"


def _events(count: int, start: int = 0) -> list[NewEvent]:
    return [NewEvent("t", 1, {"n": start + i}) for i in range(count)]


_T0 = 1_700_000_000_000_000  # a timestamp_us


class _Event(NamedTuple):
    """One stored event, batch boundaries aside."""

    sequence: int
    writer: str
    version: dict[str, int]
    timestamp_us: int
    item: tuple[Any, ...]


def _flatten(batches: Iterable[RecordBatch]) -> list[_Event]:
    return [
        _Event(
            batch.first_sequence + index,
            batch.writer,
            batch.version_at(index),
            batch.timestamp_us,
            tuple(item),
        )
        for batch in batches
        for index, item in enumerate(batch.items)
    ]


def _fail(message: str) -> AssertionError:
    return AssertionError(message)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _fail(message)


def _expect_equal(actual: object, expected: object, what: str) -> None:
    if actual != expected:
        raise _fail(f"{what}: expected {expected!r}, got {actual!r}")


def _expect_events(actual: Sequence[_Event], expected: Sequence[_Event], what: str) -> None:
    if list(actual) == list(expected):
        return
    for index, (got, want) in enumerate(zip(actual, expected, strict=False)):
        if got != want:
            raise _fail(f"{what}: event {index} should be {want!r}, got {got!r}")
    raise _fail(
        f"{what}: expected {len(expected)} events "
        f"(sequences {[e.sequence for e in expected]}), got {len(actual)} "
        f"(sequences {[e.sequence for e in actual]})"
    )


def _expect_batch(actual: RecordBatch | None, expected: RecordBatch, what: str) -> None:
    """``actual`` (an append's result) is ``expected`` (from next_batch)."""
    if actual is None:
        raise _fail(f"{what}: the append returned None, not the batch it wrote")
    _expect_equal(actual.first_sequence, expected.first_sequence, f"{what}: first_sequence")
    _expect_equal(actual.writer, expected.writer, f"{what}: writer")
    _expect_equal(
        dict(actual.version),
        dict(expected.version),
        f"{what}: version of the first event (calliope.core.replication.next_batch)",
    )
    _expect_equal(actual.timestamp_us, expected.timestamp_us, f"{what}: timestamp_us")
    _expect_equal(
        [tuple(item) for item in actual.items],
        [tuple(item) for item in expected.items],
        f"{what}: items",
    )


class _Log:
    """What a log should hold: the expected batches, from next_batch."""

    def __init__(self) -> None:
        self.batches: list[RecordBatch] = []
        self.version: dict[str, int] = {}
        self.last = 0

    def add(
        self,
        writer: str,
        events: Sequence[NewEvent],
        timestamp_us: int,
        observed: Mapping[str, int] | None = None,
    ) -> RecordBatch:
        items = [(e.type_name, e.schema_version, e.data) for e in events]
        batch = next_batch(self.version, self.last, writer, items, timestamp_us, observed)
        self.batches.append(batch)
        self.version, self.last = batch.last_version, batch.last_sequence
        return batch

    def events(self, first: int = 1, last: int | None = None) -> list[_Event]:
        return [
            e
            for e in _flatten(self.batches)
            if e.sequence >= first and (last is None or e.sequence <= last)
        ]


async def _collect(chunks: AsyncIterator[list[RecordBatch]], what: str) -> list[RecordBatch]:
    """Every batch a read yields, checking each chunk is a non-empty list of
    non-empty batches."""
    batches: list[RecordBatch] = []
    count = 0
    async for chunk in chunks:
        count += 1
        _expect(
            isinstance(chunk, list) and len(chunk) > 0,
            f"{what}: chunk {count} of the read is {chunk!r}, not a non-empty list of batches",
        )
        for batch in chunk:
            _expect(len(batch.items) > 0, f"{what}: the read yielded an empty batch {batch!r}")
        batches.extend(chunk)
    return batches


async def _read(
    store: StorePort, stream_id: str, first: int = 1, last: int | None = None
) -> list[_Event]:
    what = f"plain.read({stream_id!r}, {first}, {last})"
    return _flatten(await _collect(store.plain.read(stream_id, first, last), what))


async def _read_replica(
    store: StorePort, stream_id: str, replica: str, first: int = 1, last: int | None = None
) -> list[_Event]:
    what = f"replicated.read_replica({stream_id!r}, {replica!r}, {first}, {last})"
    chunks = store.replicated.read_replica(stream_id, replica, first, last)
    return _flatten(await _collect(chunks, what))


async def _raises(error: type[BaseException], call: Awaitable[object], what: str) -> BaseException:
    """The ``error`` that awaiting ``call`` raises."""
    try:
        result = await call
    except error as raised:
        return raised
    except Exception as other:
        raise _fail(f"{what} should raise {error.__name__}, raised {other!r}") from other
    raise _fail(f"{what} should raise {error.__name__}, returned {result!r}")


@contextlib.asynccontextmanager
async def _waiting(watcher: Watcher) -> AsyncIterator[asyncio.Task[None]]:
    """``watcher.wait()`` running as a task (cancelled if still waiting)."""
    task = asyncio.ensure_future(watcher.wait())
    try:
        await asyncio.sleep(0)  # let it start waiting
        yield task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


async def _woken(task: asyncio.Task[None], what: str) -> None:
    done, _ = await asyncio.wait({task}, timeout=WAKE_SECONDS)
    _expect(bool(done), f"a watcher was not woken within {WAKE_SECONDS}s after {what}")
    task.result()


def _by_replica(pages: Sequence[ReplicaPage], what: str) -> dict[str, ReplicaPage]:
    found: dict[str, ReplicaPage] = {}
    for page in pages:
        _expect(page.replica not in found, f"{what}: two pages for replica {page.replica!r}")
        _expect(
            len(page.batches) > 0,
            f"{what}: the page of {page.replica!r} is empty (a replica with nothing new "
            f"must be left out)",
        )
        found[page.replica] = page
    return found


def _check_page(page: ReplicaPage, after: int, limit: int, what: str) -> list[_Event]:
    """The page's events: they continue from ``after``, in whole batches
    that stop once ``limit`` is reached."""
    events = _flatten(page.batches)
    _expect_equal(
        [e.sequence for e in events],
        list(range(after + 1, after + 1 + len(events))),
        f"{what}: sequences of the page of {page.replica!r} (read after {after})",
    )
    before_last = sum(len(batch.items) for batch in page.batches[:-1])
    _expect(
        before_last < limit,
        f"{what}: the page of {page.replica!r} holds {len(events)} events in "
        f"{len(page.batches)} batches with limit={limit}: it should have stopped at the "
        f"batch that reached the limit",
    )
    _expect(
        all(e.writer == page.replica for e in events),
        f"{what}: the page of {page.replica!r} holds events written by others: {events!r}",
    )
    return events


# -- plain logs: appending -----------------------------------------------------


@_case
async def plain_append_starts_at_sequence_one(new_store: StoreFactory) -> None:
    """The first batch of a plain log gets sequence 1 and version {writer: 1}
    for its first event; the returned batch holds the events and the
    timestamp_us given."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream = ids("s")
        expected = _Log().add("w", _events(2), _T0)
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
        stream, log = ids("s"), _Log()
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
        stream, log = ids("s"), _Log()
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
        stream, log = ids("s"), _Log()
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
        stream, log = ids("s"), _Log()
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
        stream, log = ids("s"), _Log()
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
        stream, log = ids("s"), _Log()
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
        stream, log = ids("s"), _Log()
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


# -- replica logs --------------------------------------------------------------


@_case
async def replica_append_merges_observed(new_store: StoreFactory) -> None:
    """append_replica gives the batch's first event the version of the log's
    last event with the observed entries of other replicas merged in where
    higher, and the replica's own entry equal to its sequence; an append
    without observed keeps what the log had seen."""
    ids = _Ids()
    a, b, c = ids("a"), ids("b"), ids("c")
    async with opened(new_store) as store:
        await store.lease(a)
        await store.lease(b)
        stream = ids("s")
        log_a, log_b = _Log(), _Log()
        expected = log_a.add(a, _events(2), _T0, {})
        batch = await store.replicated.append_replica(
            stream, a, _events(2), observed={}, timestamp_us=_T0
        )
        _expect_batch(batch, expected, f"the first append to {a}'s log")
        _expect_equal(dict(expected.version), {a: 1}, "model")
        steps: list[tuple[dict[str, int], dict[str, int]]] = [
            ({a: 2}, {a: 2, b: 1}),  # observed merged in
            ({a: 1, b: 7}, {a: 2, b: 2}),  # lower entries and the writer's own ignored
            ({}, {a: 2, b: 3}),  # nothing observed: what the log had seen stays
            ({a: 5, c: 1}, {a: 5, b: 4, c: 1}),
        ]
        for step, (observed, version) in enumerate(steps):
            expected = log_b.add(b, _events(1, step), _T0 + step, observed)
            _expect_equal(dict(expected.version), version, "model")
            batch = await store.replicated.append_replica(
                stream, b, _events(1, step), observed=observed, timestamp_us=_T0 + step
            )
            _expect_batch(batch, expected, f"append {step + 1} to {b}'s log, observed={observed}")
        expected = log_b.add(b, _events(3, 10), _T0 + 9, {a: 6})
        batch = await store.replicated.append_replica(
            stream, b, _events(3, 10), observed={a: 6}, timestamp_us=_T0 + 9
        )
        _expect_batch(batch, expected, f"a 3-event append to {b}'s log")
        _expect_events(
            await _read_replica(store, stream, b), log_b.events(), f"{b}'s log read back"
        )
        _expect_events(
            await _read_replica(store, stream, a), log_a.events(), f"{a}'s log read back"
        )
        _expect_equal(
            await store.replicated.append_replica(stream, b, [], observed={a: 9}, timestamp_us=_T0),
            None,
            "append_replica of no events",
        )
        _expect_equal(len(await _read_replica(store, stream, b)), 7, "events in b's log")


@_case
async def replica_list_is_sorted(new_store: StoreFactory) -> None:
    """replicas(stream) lists the replica ids with a log in the stream, sorted,
    as every store sees them; an unknown stream has none."""
    ids = _Ids()
    a, b, c = ids("a"), ids("b"), ids("c")
    async with opened(new_store) as store, opened(new_store) as other:
        stream = ids("s")
        _expect_equal(await store.replicated.replicas(stream), [], "replicas of an unknown stream")
        for replica in (c, a, b):
            await store.lease(replica)
            await store.replicated.append_replica(
                stream, replica, _events(1), observed={}, timestamp_us=_T0
            )
        _expect_equal(await store.replicated.replicas(stream), [a, b, c], "replicas(stream)")
        _expect_equal(
            await other.replicated.replicas(stream), [a, b, c], "replicas in another store"
        )
        _expect_equal(await store.replicated.replicas(ids("t")), [], "replicas of another stream")


@_case
async def replica_read_ranges(new_store: StoreFactory) -> None:
    """read_replica reads one replica's log like plain read: inclusive bounds,
    to_sequence optional, batches cut at the bounds; other replicas' logs and
    unknown replicas are apart."""
    ids = _Ids()
    a, b = ids("a"), ids("b")
    async with opened(new_store) as store:
        await store.lease(a)
        await store.lease(b)
        stream, log = ids("s"), _Log()
        for count, observed in [(3, {}), (2, {b: 1}), (4, {b: 1})]:
            log.add(a, _events(count), _T0 + count, observed)
            await store.replicated.append_replica(
                stream, a, _events(count), observed=observed, timestamp_us=_T0 + count
            )
            if count == 3:
                await store.replicated.append_replica(
                    stream, b, _events(1, 50), observed={a: 3}, timestamp_us=_T0
                )
        chunks = store.replicated.read_replica(stream, a, 2)
        _expect_events(
            _flatten(await _collect(chunks, "read_replica(a, 2)")),
            log.events(2),
            "read_replica(a, 2)",
        )
        for first, last in [(1, None), (2, 4), (5, 5), (4, 9), (6, 100)]:
            _expect_events(
                await _read_replica(store, stream, a, first, last),
                log.events(first, last),
                f"read_replica(a, {first}, {last})",
            )
        _expect_events(await _read_replica(store, stream, a, 10), [], "read_replica(a, 10)")
        _expect_equal([e.writer for e in await _read_replica(store, stream, b)], [b], "b's log")
        _expect_events(
            await _read_replica(store, stream, ids("nobody")), [], "an unknown replica's log"
        )


@_case
async def replica_version_is_the_last_events(new_store: StoreFactory) -> None:
    """replica_version is the version of the last event of the replica's log
    ({} for none), as every store sees it."""
    ids = _Ids()
    a, b = ids("a"), ids("b")
    async with opened(new_store) as store, opened(new_store) as other:
        await store.lease(a)
        stream, log = ids("s"), _Log()
        _expect_equal(await store.replicated.replica_version(stream, a), {}, "version of no log")
        log.add(a, _events(1), _T0, {b: 2})
        await store.replicated.append_replica(
            stream, a, _events(1), observed={b: 2}, timestamp_us=_T0
        )
        log.add(a, _events(3), _T0, {b: 4})
        await store.replicated.append_replica(
            stream, a, _events(3), observed={b: 4}, timestamp_us=_T0
        )
        _expect_equal(log.version, {a: 4, b: 4}, "model")
        _expect_equal(
            await store.replicated.replica_version(stream, a), {a: 4, b: 4}, "replica_version"
        )
        _expect_equal(
            await other.replicated.replica_version(stream, a), {a: 4, b: 4}, "in another store"
        )
        _expect_equal(
            await store.replicated.replica_version(stream, b), {}, "version of b (no log)"
        )


# -- replica logs: read_new ----------------------------------------------------


@_case
async def read_new_pages_per_replica(new_store: StoreFactory) -> None:
    """read_new returns one page per replica holding the events after
    known[replica] (0 when absent), and none for replicas with nothing new
    (also for an unknown stream)."""
    ids = _Ids()
    a, b, c = ids("a"), ids("b"), ids("c")
    async with opened(new_store) as store:
        stream = ids("s")
        logs = {r: _Log() for r in (a, b, c)}
        for replica, count in [(a, 3), (b, 2), (c, 1)]:
            await store.lease(replica)
            logs[replica].add(replica, _events(count), _T0)
            await store.replicated.append_replica(
                stream, replica, _events(count), observed={}, timestamp_us=_T0
            )
        _expect_equal(
            await store.replicated.read_new(ids("t"), {}, limit=10),
            [],
            "read_new of an unknown stream",
        )
        known = {a: 3, b: 1}
        pages = _by_replica(await store.replicated.read_new(stream, known, limit=10), "read_new")
        _expect_equal(sorted(pages), [b, c], f"replicas with pages after known={known}")
        for replica, after in [(b, 1), (c, 0)]:
            events = _check_page(pages[replica], after, 10, "read_new")
            _expect_events(events, logs[replica].events(after + 1), f"the page of {replica}")
            _expect_equal(pages[replica].more, False, f"more of {replica}'s whole rest")
        everything = {a: 3, b: 2, c: 1}
        _expect_equal(
            await store.replicated.read_new(stream, everything, limit=10),
            [],
            "read_new when all is known",
        )


@_case
async def read_new_excludes_replicas(new_store: StoreFactory) -> None:
    """read_new(..., exclude=ids) leaves out the logs of the replicas in
    ``exclude`` (any collection; empty by default), and only those."""
    ids = _Ids()
    a, b, c = ids("a"), ids("b"), ids("c")
    async with opened(new_store) as store:
        stream = ids("s")
        for replica in (a, b, c):
            await store.lease(replica)
            await store.replicated.append_replica(
                stream, replica, _events(2), observed={}, timestamp_us=_T0
            )
        cases: list[tuple[Collection[str], list[str]]] = [
            ((), [a, b, c]),
            ({a}, [b, c]),
            ([b], [a, c]),
            (frozenset({a, c}), [b]),
            ({a, b, c}, []),
            ({ids("nobody")}, [a, b, c]),
        ]
        for exclude, left in cases:
            pages = await store.replicated.read_new(stream, {}, limit=10, exclude=exclude)
            _expect_equal(
                sorted(_by_replica(pages, "read_new")),
                left,
                f"replicas read with exclude={exclude}",
            )
        pages = await store.replicated.read_new(stream, {}, limit=10)
        _expect_equal(
            sorted(_by_replica(pages, "read_new")), [a, b, c], "replicas read without exclude"
        )


@_case
async def read_new_pages_are_bounded(new_store: StoreFactory) -> None:
    """With limit=3 and 10 single-event batches a page holds 1 to 3 events
    and sets more while the log holds more; reading on from the returned
    events yields the rest, without loss or repeat, the last page with more
    False."""
    ids = _Ids()
    a = ids("a")
    async with opened(new_store) as store:
        await store.lease(a)
        stream, log = ids("s"), _Log()
        for n in range(10):
            log.add(a, _events(1, n), _T0 + n, {})
            await store.replicated.append_replica(
                stream, a, _events(1, n), observed={}, timestamp_us=_T0 + n
            )
        known: dict[str, int] = {}
        read: list[_Event] = []
        for _ in range(12):
            pages = _by_replica(await store.replicated.read_new(stream, known, limit=3), "read_new")
            if not pages:
                break
            _expect_equal(sorted(pages), [a], "replicas read")
            page = pages[a]
            events = _check_page(page, known.get(a, 0), 3, f"read_new after {known}")
            _expect(1 <= len(events) <= 3, f"a page of {len(events)} events with limit=3")
            rest = events[-1].sequence < 10
            _expect_equal(
                page.more, rest, f"more of the page ending at {events[-1].sequence} of 10"
            )
            read.extend(events)
            known[a] = events[-1].sequence
        _expect_events(read, log.events(), "the events of every page")


@_case
async def read_new_big_batch_comes_whole(new_store: StoreFactory) -> None:
    """A page holds whole batches and at least one: a batch bigger than the
    limit comes whole; reading on yields the rest."""
    ids = _Ids()
    a = ids("a")
    async with opened(new_store) as store:
        await store.lease(a)
        stream, log = ids("s"), _Log()
        for count in (5, 1, 1):
            log.add(a, _events(count), _T0, {})
            await store.replicated.append_replica(
                stream, a, _events(count), observed={}, timestamp_us=_T0
            )
        pages = _by_replica(await store.replicated.read_new(stream, {}, limit=3), "read_new")
        page = pages.get(a)
        _expect(page is not None, f"read_new returned no page for {a}")
        assert page is not None
        _expect_equal(
            [len(batch.items) for batch in page.batches[:1]],
            [5],
            "the first batch of the page (whole)",
        )
        events = _check_page(page, 0, 3, "read_new(limit=3)")
        _expect_equal(page.more, len(events) < 7, "more")
        rest = await store.replicated.read_new(stream, {a: events[-1].sequence}, limit=3)
        later = [e for p in rest for e in _flatten(p.batches)]
        _expect_events(events + later, log.events(), "the first page and the rest")


@_case
async def read_new_slices_a_straddling_batch(new_store: StoreFactory) -> None:
    """A batch straddling known comes cut to the events after it, as a batch
    whose first_sequence and version are those of its first event."""
    ids = _Ids()
    a, b = ids("a"), ids("b")
    async with opened(new_store) as store:
        await store.lease(a)
        stream, log = ids("s"), _Log()
        full = log.add(a, _events(4), _T0, {b: 3})
        await store.replicated.append_replica(
            stream, a, _events(4), observed={b: 3}, timestamp_us=_T0
        )
        pages = _by_replica(await store.replicated.read_new(stream, {a: 2}, limit=10), "read_new")
        _expect_equal(sorted(pages), [a], "replicas read")
        want = full.sliced(3, None)
        assert want is not None
        got = pages[a].batches[0]
        _expect_equal(
            (got.first_sequence, dict(got.version), [tuple(i) for i in got.items]),
            (3, {a: 3, b: 3}, [tuple(i) for i in want.items]),
            "(first_sequence, version, items) of a batch cut after known=2",
        )


# -- change notification -------------------------------------------------------


@_case
async def watch_wakes_on_append_by_another_store(new_store: StoreFactory) -> None:
    """A watcher's wait() returns after another store on the same storage
    appends to the stream's plain log; the watcher's context closes cleanly
    and a new one works the same."""
    ids = _Ids()
    async with opened(new_store) as watching, opened(new_store) as writing:
        stream = ids("s")
        for round_ in range(2):
            async with watching.changes.watch(stream) as watcher, _waiting(watcher) as task:
                await writing.plain.append(
                    stream, "w", _events(1, round_), expected_sequence=None, timestamp_us=_T0
                )
                await _woken(task, f"another store appended to the plain log (watch {round_ + 1})")


@_case
async def watch_wakes_on_own_append(new_store: StoreFactory) -> None:
    """A watcher wakes after its own store appends to the stream."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream = ids("s")
        async with store.changes.watch(stream) as watcher, _waiting(watcher) as task:
            await store.plain.append(
                stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0
            )
            await _woken(task, "its own store appended to the plain log")


@_case
async def watch_wakes_on_replica_append(new_store: StoreFactory) -> None:
    """A watcher's wait() returns after another store appends to one of the
    stream's replica logs (a new one, then an existing one)."""
    ids = _Ids()
    async with opened(new_store) as watching, opened(new_store) as writing:
        stream = ids("s")
        async with watching.changes.watch(stream) as watcher:
            for round_ in range(2):
                async with _waiting(watcher) as task:
                    await writing.replicated.append_replica(
                        stream,
                        writing.replica_id,
                        _events(1, round_),
                        observed={},
                        timestamp_us=_T0,
                    )
                    await _woken(
                        task, f"another store appended to a replica log (append {round_ + 1})"
                    )


@_case
async def watch_wakes_every_watcher(new_store: StoreFactory) -> None:
    """Many watchers on one stream, in one store or several, all wake after
    one append."""
    ids = _Ids()
    async with opened(new_store) as one, opened(new_store) as two, opened(new_store) as writing:
        stream = ids("s")
        async with contextlib.AsyncExitStack() as stack:
            tasks = []
            for store in (one, one, one, two, two):
                watcher = await stack.enter_async_context(store.changes.watch(stream))
                tasks.append(await stack.enter_async_context(_waiting(watcher)))
            await writing.plain.append(
                stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0
            )
            for index, task in enumerate(tasks):
                await _woken(task, f"an append (watcher {index + 1} of {len(tasks)})")


@_case
async def watch_ignores_other_streams(new_store: StoreFactory) -> None:
    """A watcher is not woken by appends to another stream, nor by what its
    stream held before it was created."""
    ids = _Ids()
    async with opened(new_store) as watching, opened(new_store) as writing:
        busy, quiet = ids("busy"), ids("quiet")
        await writing.plain.append(quiet, "w", _events(2), expected_sequence=None, timestamp_us=_T0)
        await writing.replicated.append_replica(
            quiet, writing.replica_id, _events(1), observed={}, timestamp_us=_T0
        )
        async with (
            watching.changes.watch(quiet) as quiet_watcher,
            watching.changes.watch(busy) as busy_watcher,
            _waiting(quiet_watcher) as quiet_task,
            _waiting(busy_watcher) as busy_task,
        ):
            await writing.plain.append(
                busy, "w", _events(1), expected_sequence=None, timestamp_us=_T0
            )
            await _woken(busy_task, "an append to its stream")
            await asyncio.sleep(QUIET_SECONDS)
            _expect(
                not quiet_task.done(),
                "a watcher woke though only another stream was appended to",
            )


# -- snapshots -----------------------------------------------------------------


@_case
async def snapshot_round_trip(new_store: StoreFactory) -> None:
    """save then load returns the SnapshotRecord's plain data unchanged, in
    every store; an unknown id loads None."""
    ids = _Ids()
    data = {"state": [1, "two", None, 2.5, True], "nested": {"k": b"\x01"}, "text": "\u00e9"}
    record = SnapshotRecord(7, _T0 + 3, "my.state", 2, data)
    async with opened(new_store) as store, opened(new_store) as other:
        snapshot = ids("snap")
        _expect_equal(await store.snapshots.load(snapshot), None, "load of an unknown id")
        await store.snapshots.save(snapshot, record)
        _expect_equal(await store.snapshots.load(snapshot), record, "load after save")
        _expect_equal(await other.snapshots.load(snapshot), record, "load in another store")
        _expect_equal(await store.snapshots.load(ids("other")), None, "load of another id")


@_case
async def snapshot_load_returns_the_newest(new_store: StoreFactory) -> None:
    """load returns the snapshot with the highest sequence, whatever the
    order they were saved in."""
    ids = _Ids()
    async with opened(new_store) as store:
        snapshot = ids("snap")
        for sequence in (5, 9, 3):
            await store.snapshots.save(
                snapshot, SnapshotRecord(sequence, _T0 + sequence, "t", 1, {"at": sequence})
            )
        loaded = await store.snapshots.load(snapshot)
        _expect_equal(loaded, SnapshotRecord(9, _T0 + 9, "t", 1, {"at": 9}), "the newest snapshot")


@_case
async def snapshot_newest_survives_pruning(new_store: StoreFactory) -> None:
    """After many saves (older ones may be pruned) load still returns the
    newest, and each id keeps its own."""
    ids = _Ids()
    async with opened(new_store) as store:
        one, two = ids("one"), ids("two")
        for sequence in range(1, 13):
            await store.snapshots.save(one, SnapshotRecord(sequence, _T0, "t", 1, {"at": sequence}))
            await store.snapshots.save(two, SnapshotRecord(sequence * 10, _T0, "t", 1, [sequence]))
            _expect_equal(
                await store.snapshots.load(one),
                SnapshotRecord(sequence, _T0, "t", 1, {"at": sequence}),
                f"load after saving sequence {sequence}",
            )
        _expect_equal(
            await store.snapshots.load(two), SnapshotRecord(120, _T0, "t", 1, [12]), "id two"
        )


# -- the store -----------------------------------------------------------------


@_case
async def store_opens_and_closes(new_store: StoreFactory) -> None:
    """A store opens and closes, with and without use; its replica_id is a
    non-empty string that stays the same while it is open; two stores from
    the factory have different replica ids."""
    async with opened(new_store) as store:
        replica = store.replica_id
        _expect(isinstance(replica, str) and replica != "", f"replica_id is {replica!r}")
        async with opened(new_store) as other:
            _expect(other.replica_id != replica, "two stores of the factory share a replica id")
        await store.plain.last_sequence(_Ids()("s"))
        _expect_equal(store.replica_id, replica, "replica_id after use")


@_case
async def store_leases_are_exclusive(new_store: StoreFactory) -> None:
    """lease(r) holds replica id r (idempotently, and the store's own id is
    held from open) until the store closes: meanwhile another store's
    lease of it raises ReplicaInUseError; after the close it can be taken."""
    ids = _Ids()
    extra = ids("extra")
    async with opened(new_store) as later:
        async with opened(new_store) as holder:
            await holder.lease(extra)
            await holder.lease(extra)
            await holder.lease(holder.replica_id)
            own = holder.replica_id
            await _raises(
                ReplicaInUseError, later.lease(extra), "leasing a replica id another store leased"
            )
            await _raises(
                ReplicaInUseError, later.lease(own), "leasing another open store's replica id"
            )
        await later.lease(extra)
        await later.lease(own)
        async with opened(new_store) as third:
            await _raises(
                ReplicaInUseError,
                third.lease(extra),
                "leasing a replica id taken over after a close",
            )


@_case
async def store_refuses_appends_after_close(new_store: StoreFactory) -> None:
    """After aclose, appends to plain and replica logs raise AppClosedError."""
    ids = _Ids()
    stream = ids("s")
    async with opened(new_store) as keep:  # the storage outlives the closed store
        async with opened(new_store) as store:
            await store.plain.append(
                stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0
            )
            replica = store.replica_id
        await _raises(
            AppClosedError,
            store.plain.append(stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0),
            "plain.append on a closed store",
        )
        await _raises(
            AppClosedError,
            store.replicated.append_replica(
                stream, replica, _events(1), observed={}, timestamp_us=_T0
            ),
            "replicated.append_replica on a closed store",
        )
        _expect_equal(await keep.plain.last_sequence(stream), 1, "last_sequence after the refusals")
