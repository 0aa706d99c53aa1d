"""Closing under races, and bad arguments to the new calls.

Faults guarded here (found by trying to break the reworked app):

* two tasks closing one app at once: the second never returned;
* cancelling the task that was closing the app cancelled the replicated
  persists it waited for: some raised CancelledError after their events
  were written, the rest were never answered;
* ``max_reported`` beyond what a reply can hold broke the round and left
  the persists queued behind it unanswered;
* ``query(since={"a": 1})`` and ``persist_all(None)`` raised raw
  AttributeError/TypeError;
* an app closed while it was opening came up open afterwards.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import calliope
from tests.integration.conftest import OpenApp
from tests.integration.events import ItemAdded
from tests.integration.test_app_lifecycle import LeaseGate, wait_in_thread

LIMIT = 5.0  # seconds: a guard against hangs, never a measurement


async def test_two_tasks_closing_one_app_both_return(open_app: OpenApp) -> None:
    app = await open_app(replica_id="a").__aenter__()
    stream = app.journal.event_stream("s", ItemAdded)
    writing = asyncio.create_task(stream.persist(ItemAdded("x")))
    await asyncio.sleep(0)
    closers = [asyncio.create_task(app.aclose()) for _ in range(2)]
    async with asyncio.timeout(LIMIT):
        await asyncio.gather(*closers)
    assert (await writing).sequence == 1


async def test_cancelling_the_closing_task_never_breaks_the_persists_it_waits_for(
    open_app: OpenApp,
) -> None:
    async with open_app(replica_id="keeper") as keeper:
        other = keeper.journal.replicated_event_stream("s", ItemAdded)
        await asyncio.gather(*(other.persist(ItemAdded("b")) for _ in range(300)))
        app = await open_app(replica_id="a").__aenter__()
        stream = app.journal.replicated_event_stream("s", ItemAdded)
        persists = [asyncio.create_task(stream.persist(ItemAdded(str(n)))) for n in range(200)]
        for _ in range(3):  # the first round is writing, or reading the others' events
            await asyncio.sleep(0)
        closing = asyncio.create_task(app.aclose())
        await asyncio.sleep(0.002)
        closing.cancel()
        async with asyncio.timeout(LIMIT):
            results = await asyncio.gather(*persists, return_exceptions=True)
            await app.aclose()  # the close went on; this returns when it is done
        assert all(isinstance(r, calliope.PersistReply) for r in results), [
            r for r in results if not isinstance(r, calliope.PersistReply)
        ]
        reader = keeper.journal.replicated_event_stream("s", ItemAdded)
        stored = [e.event.sku for e in await reader.query().to_list() if e.replica_id == "a"]
    assert sorted(stored) == sorted(str(n) for n in range(200))


async def test_bad_arguments_to_replicated_calls_are_refused_clearly(open_app: OpenApp) -> None:
    async with open_app(replica_id="a") as app:
        stream = app.journal.replicated_event_stream("s", ItemAdded)
        await stream.persist(ItemAdded("x"))
        with pytest.raises(calliope.InvalidArgumentError, match="max_reported"):
            await stream.persist(ItemAdded("y"), max_reported=2**63)
        with pytest.raises(calliope.InvalidArgumentError, match="since"):
            stream.query(since="x")  # type: ignore[arg-type]
        with pytest.raises(calliope.InvalidArgumentError, match="since"):
            stream.live_query(since=5)  # type: ignore[arg-type]
        # A mapping of replica ids to counters is a fine ``since``.
        assert await stream.query(since={"a": 1}).to_list() == []  # type: ignore[arg-type]
        reply = await stream.persist(ItemAdded("z"))
        assert reply.envelope.version == calliope.VersionVector({"a": 2})
        plain = app.journal.event_stream("p", ItemAdded)
        with pytest.raises(calliope.InvalidArgumentError, match="iterable"):
            await plain.persist_all(None)  # type: ignore[arg-type]


async def test_an_app_closed_while_it_opens_ends_closed_and_frees_its_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = LeaseGate(monkeypatch)
    app = calliope.open(tmp_path / "data", replica_id="solo")
    opening = asyncio.create_task(app.__aenter__())
    await wait_in_thread(gate.started, "taking the lease")
    await app.aclose()  # while it opens
    gate.proceed.set()
    with pytest.raises(calliope.AppClosedError, match="closed while it opened"):
        async with asyncio.timeout(LIMIT):
            await opening
    with pytest.raises(calliope.AppClosedError):  # no use of a closed app
        await app.journal.event_stream("s", ItemAdded).persist(ItemAdded("x"))
    monkeypatch.undo()
    async with calliope.open(tmp_path / "data", replica_id="solo") as again:
        assert again.replica_id == "solo"


async def test_closing_under_writers_on_many_streams_loses_no_acknowledged_event(
    tmp_path: Path,
) -> None:
    """Writers on 300 streams at once (their groups flushed in worker
    threads, several logs at a time) while the app closes: each writer ends
    with AppClosedError and nothing else, and every event a persist
    acknowledged is there when the store is opened again."""
    acknowledged: dict[int, int] = {}
    app = calliope.open(tmp_path / "data", replica_id="w")
    await app.__aenter__()

    async def writer(n: int) -> None:
        stream = app.journal.event_stream(f"s-{n}", ItemAdded)
        with pytest.raises(calliope.AppClosedError):
            while True:
                acknowledged[n] = (await stream.persist(ItemAdded(str(n)))).sequence

    writers = [asyncio.create_task(writer(n)) for n in range(300)]
    while len(acknowledged) < 300:
        await asyncio.sleep(0.01)
    await app.__aexit__(None, None, None)
    await asyncio.gather(*writers)
    async with calliope.open(tmp_path / "data", replica_id="w") as again:
        for n, sequence in acknowledged.items():
            stream = again.journal.event_stream(f"s-{n}", ItemAdded)
            assert await stream.last_sequence() >= sequence
