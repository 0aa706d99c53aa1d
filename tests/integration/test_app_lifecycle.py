"""The app owns what it starts: closing and cancelling, on every adapter.

Faults guarded here (DESIGN.md, "The app owns what it starts"):

* a live query outlived its app: a consumer blocked in ``async for`` was
  never woken by ``aclose()``, and went on receiving events other apps
  wrote after the close;
* persists in flight at ``aclose()`` failed on the file adapter (and
  succeeded on the memory one): one rule now, they all complete and are
  durable, and a persist called once ``aclose()`` has started raises
  :class:`calliope.AppClosedError`;
* a cancelled open leaked the replica lease (file adapter): the lease
  taken in a worker thread stayed held after the open was cancelled, so the
  replica id could not be opened again in this process;
* constructors do no I/O: ``calliope.open(path)`` creates nothing before
  ``async with``.

Every wait that hangs on today's code is bounded (:func:`within`), so a
hang is a test failure that says what did not finish, never a timing
assertion.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest

import calliope
from calliope import Envelope
from calliope.adapters.files.layout import ReplicaLease
from tests.integration.conftest import OpenApp
from tests.integration.events import ItemAdded

T = TypeVar("T")

LIMIT = 5.0  # seconds: a guard against hangs, never a measurement

Kind = Literal["plain", "replicated"]
KINDS: list[Kind] = ["plain", "replicated"]

LiveQueryOf = AbstractAsyncContextManager[AsyncIterator[Envelope[ItemAdded]]]


async def within(awaitable: Awaitable[T], what: str) -> T:
    """``await awaitable``, failing the test (not hanging it) past LIMIT."""
    try:
        async with asyncio.timeout(LIMIT):
            return await awaitable
    except TimeoutError:
        pytest.fail(f"{what} was still waiting after {LIMIT} s (it hangs)")


class Handle:
    """The plain or replicated handle on stream "s" of one app, as the two
    calls these tests need: persist and live_query."""

    def __init__(self, app: calliope.App, kind: Kind) -> None:
        self.persist: Callable[[ItemAdded], Coroutine[Any, Any, object]]
        self.live_query: Callable[[], LiveQueryOf]
        if kind == "plain":
            plain = app.journal.event_stream("s", ItemAdded)
            self.persist, self.live_query = plain.persist, plain.live_query
        else:
            replicated = app.journal.replicated_event_stream("s", ItemAdded)
            self.persist, self.live_query = replicated.persist, replicated.live_query


async def stored_events(app: calliope.App, kind: Kind) -> list[Envelope[ItemAdded]]:
    if kind == "plain":
        return await app.journal.event_stream("s", ItemAdded).query().to_list()
    return await app.journal.replicated_event_stream("s", ItemAdded).query().to_list()


# -- live queries end with their app ---------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_live_query_ends_when_its_app_closes(open_app: OpenApp, kind: Kind) -> None:
    """Fault: ``aclose()`` did not end the app's live queries.

    A consumer blocked in ``async for envelope in live`` while another task
    closes the app must see its loop end normally (no exception), and must
    not receive what another app writes after the close. Afterwards a live
    query and a persist on the closed app raise AppClosedError.
    """
    async with open_app(replica_id="other") as other:
        app = await open_app(replica_id="closing").__aenter__()
        try:
            handle = Handle(app, kind)
            received: list[Envelope[ItemAdded]] = []
            got_one = asyncio.Event()

            async def consume() -> None:
                async with handle.live_query() as live:
                    async for envelope in live:
                        received.append(envelope)
                        got_one.set()

            consumer = asyncio.create_task(consume())
            try:
                await handle.persist(ItemAdded("before close"))
                await within(got_one.wait(), "the live query delivering the first event")
                for _ in range(5):  # the consumer goes back to waiting for more
                    await asyncio.sleep(0)

                await within(app.aclose(), "app.aclose()")
                await Handle(other, kind).persist(ItemAdded("after close"))
                await within(consumer, "the consumer's `async for` after its app closed")
            finally:
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)
            assert [e.event for e in received] == [ItemAdded("before close")]

            with pytest.raises(calliope.AppClosedError):
                async with handle.live_query():
                    pass
            with pytest.raises(calliope.AppClosedError):
                await handle.persist(ItemAdded("on a closed app"))
        finally:
            await app.aclose()


# -- persists in flight at close -------------------------------------------------

IN_FLIGHT = 50


@pytest.mark.parametrize("kind", KINDS)
async def test_persists_in_flight_at_close_complete_and_are_durable(
    open_app: OpenApp, kind: Kind
) -> None:
    """Fault: persists in flight when the app closed failed on the file
    adapter (AppClosedError from the group commit) but succeeded in memory.

    One rule on both adapters: every persist called before ``aclose()``
    returns its envelope (or reply), has finished when ``aclose()``
    returns (today the file adapter's replicated persists went on writing,
    through a log the closed store reopened, after the app had released
    its replica id), and is durable, readable by an app opened afterwards;
    a persist called once ``aclose()`` started raises AppClosedError and
    writes nothing.
    """
    # The keeper keeps a memory store alive after the closing app is gone.
    async with open_app(replica_id="keeper"):
        app = await open_app(replica_id="closing").__aenter__()
        handle = Handle(app, kind)
        expected = [ItemAdded(f"item-{i}") for i in range(IN_FLIGHT)]
        persists = [asyncio.create_task(handle.persist(event)) for event in expected]
        try:
            await asyncio.sleep(0)  # every persist has started
            closing = asyncio.create_task(app.aclose())
            await asyncio.sleep(0)  # aclose() has started
            with pytest.raises(calliope.AppClosedError):
                await handle.persist(ItemAdded("called during aclose"))
            await within(closing, "app.aclose() with persists in flight")
            still_running = sum(not task.done() for task in persists)
            results = await within(
                asyncio.gather(*persists, return_exceptions=True), "the in-flight persists"
            )
        finally:
            for task in persists:
                task.cancel()
            await asyncio.gather(*persists, return_exceptions=True)
            await app.aclose()

        failures = [result for result in results if isinstance(result, BaseException)]
        assert failures == [], f"{len(failures)} of {IN_FLIGHT} in-flight persists failed"
        # Otherwise they write after the app released its replica id.
        assert still_running == 0, f"aclose() returned while {still_running} persists still ran"
        result_type = calliope.Envelope if kind == "plain" else calliope.PersistReply
        assert all(isinstance(result, result_type) for result in results), results

        async with open_app(replica_id="later") as later:
            stored = await within(stored_events(later, kind), "reading the stream")
        assert sorted(e.event.sku for e in stored) == sorted(e.sku for e in expected)
        assert all(e.replica_id == "closing" for e in stored)


# -- a cancelled open never leaks the replica lease (file adapter) ---------------


class LeaseGate:
    """Holds ``ReplicaLease.__init__`` (run by the store in a worker thread)
    until ``proceed`` is set; ``started`` and ``finished`` tell where it is."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.proceed = threading.Event()
        self.finished = threading.Event()
        original = ReplicaLease.__init__
        gate = self

        def gated_init(lease: ReplicaLease, *args: Any, **kwargs: Any) -> None:
            gate.started.set()
            gate.proceed.wait(LIMIT)
            try:
                original(lease, *args, **kwargs)
            finally:
                gate.finished.set()

        monkeypatch.setattr(ReplicaLease, "__init__", gated_init)


async def wait_in_thread(event: threading.Event, what: str) -> None:
    if not await asyncio.to_thread(event.wait, LIMIT):
        pytest.fail(f"{what} did not happen within {LIMIT} s")


async def test_an_open_cancelled_while_taking_the_replica_lease_releases_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: cancelling ``__aenter__`` while the replica lease was being
    taken in a worker thread left the lease held once the thread finished,
    so opening the same directory with the same replica id raised
    ReplicaInUseError until the process exited."""
    directory = tmp_path / "data"
    gate = LeaseGate(monkeypatch)
    opening = asyncio.create_task(calliope.open(directory, replica_id="solo").__aenter__())
    try:
        await wait_in_thread(gate.started, "taking the replica lease")
        opening.cancel()
        gate.proceed.set()
        (outcome,) = await within(
            asyncio.gather(opening, return_exceptions=True), "the cancelled open"
        )
    finally:
        gate.proceed.set()
        opening.cancel()
    assert isinstance(outcome, asyncio.CancelledError), f"the cancelled open gave {outcome!r}"
    await wait_in_thread(gate.finished, "the lease worker finishing")
    monkeypatch.undo()

    async with calliope.open(directory, replica_id="solo") as again:
        assert again.replica_id == "solo"


async def test_an_open_cancelled_at_any_step_after_taking_the_lease_releases_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: an open cancelled after its worker thread took the replica
    lease, but before ``__aenter__`` returned, leaked the lease.

    The lease is taken (the event loop held still meanwhile, so the open
    has not seen it yet), then the open is cancelled after 0, 1, 2, ...
    loop steps, until one open completes before its cancellation. After
    each, the same replica id must open again.
    """
    directory = tmp_path / "data"
    for steps in range(200):
        gate = LeaseGate(monkeypatch)
        opening = asyncio.create_task(calliope.open(directory, replica_id="solo").__aenter__())
        try:
            await wait_in_thread(gate.started, "taking the replica lease")
            gate.proceed.set()
            # Block the loop on purpose (briefly): when this returns, the
            # worker holds the lease and the open has not resumed yet.
            assert gate.finished.wait(LIMIT), "the lease worker did not finish"
            for _ in range(steps):
                await asyncio.sleep(0)
            cancelled = opening.cancel()
            (outcome,) = await within(
                asyncio.gather(opening, return_exceptions=True), "the cancelled open"
            )
        finally:
            gate.proceed.set()
            opening.cancel()
        if isinstance(outcome, calliope.App):  # it had opened: close it normally
            await outcome.aclose()
        elif not isinstance(outcome, asyncio.CancelledError):
            raise outcome
        monkeypatch.undo()

        try:
            async with calliope.open(directory, replica_id="solo"):
                pass
        except calliope.ReplicaInUseError as error:
            pytest.fail(f"an open cancelled {steps} loop steps after the lease leaked it: {error}")
        if not cancelled:
            break  # the open had completed: later steps cancel nothing new


# -- constructors do no I/O -----------------------------------------------------


async def test_open_creates_nothing_until_entered(tmp_path: Path) -> None:
    """Fault guarded: a constructor doing I/O. ``calliope.open(path)`` on a
    path that does not exist creates nothing until ``async with``."""
    directory = tmp_path / "not-yet" / "data"
    app = calliope.open(directory, replica_id="node-a")
    assert not directory.parent.exists()
    async with app:
        assert directory.is_dir()
