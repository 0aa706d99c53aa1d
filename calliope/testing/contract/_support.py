"""The contract suite's shared parts: the case registry and runner, and the
helpers the cases are written with.

:func:`_case` registers a case in :data:`CASES` (in the order the case
modules are imported, see :mod:`calliope.testing.contract`);
:func:`opened` and :func:`run_case` open stores and run a case with a time
bound; the rest builds events and expected logs, reads logs back and
checks what the ports returned, failing with a plain AssertionError that
says what the port did wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple

from calliope.core.replication import RecordBatch, ReplicaPage, next_batch
from calliope.shell.ports import NewEvent, StorePort, Watcher

StoreFactory = Callable[[], StorePort]
"""A fresh, unopened store on each call: every call on the same backing
storage, each store with its own replica id."""

ContractCase = Callable[[StoreFactory], Awaitable[None]]
"""One case: ``async def case(new_store: StoreFactory) -> None``."""

CASES: list[ContractCase] = []
"""Every case, in the order they are defined (the case modules in the order
:mod:`calliope.testing.contract` imports them)."""

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


class _ExpectedLog:
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
