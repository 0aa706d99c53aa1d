"""PostgreSQL faults: backends killed under load (``pg_terminate_backend``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

import calliope
from calliope import GCounter
from calliope.adapters.postgres.event_log import PostgresEventLog
from tests.integration.events import ItemAdded
from tests.postgres import ThrowawayServer, fresh_schema, postgres_dsn


async def _kill_backends(dsn: str, schema: str) -> int:
    """Terminate every backend serving the store in ``schema`` (its pool's
    and its listener's); how many."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        cursor = await connection.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name IN (%s, %s)",
            (f"calliope {schema}", f"calliope_{schema}"),
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


async def test_killed_backends_lose_no_acknowledged_event_and_duplicate_none() -> None:
    """The store's backends (its pool's and its listener's) killed five
    times under eight writers and a live query."""
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        killed = 0

        async def kill() -> None:
            nonlocal killed
            for _ in range(5):
                await asyncio.sleep(0.05)
                killed += await _kill_backends(dsn, schema)

        await _hammer_through(f"{dsn}?schema={schema}", kill)
        assert killed >= 2


async def _hammer_through(target: str, fault: Callable[[], Awaitable[None]]) -> None:
    """Eight writers and a live query on ``target`` while ``fault()`` (a
    coroutine function) strikes; then every acknowledged event is stored
    once, sequences are contiguous, and the live query saw them all."""
    async with calliope.open(target, poll_interval=0.01) as app:
        stream = app.journal.event_stream("hammered", ItemAdded)
        acknowledged: list[str] = []
        seen_live: list[str] = []

        async def writer(task: int) -> None:
            for n in range(60):
                sku = f"{task}-{n}"
                try:
                    await stream.persist(ItemAdded(sku))
                except calliope.StorageError:
                    await asyncio.sleep(0.05)
                    continue
                acknowledged.append(sku)
                await asyncio.sleep(0.002)

        async def follow() -> None:
            async with app.journal.event_stream("hammered", ItemAdded).live_query() as live:
                async for envelope in live:
                    seen_live.append(envelope.event.sku)

        follower = asyncio.create_task(follow())
        writers = asyncio.gather(*(writer(task) for task in range(8)))
        await fault()
        await writers
        for _ in range(50):  # the server may still be starting
            try:
                await stream.persist(ItemAdded("after"))
                break
            except calliope.StorageError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("no persist worked after the fault")
        acknowledged.append("after")
        stored = [envelope async for envelope in stream.query()]
        skus = [envelope.event.sku for envelope in stored]
        assert [e.sequence for e in stored] == list(range(1, len(stored) + 1))
        assert len(skus) == len(set(skus)), "an event was stored twice"
        assert set(acknowledged) <= set(skus), "an acknowledged event was lost"
        for _ in range(1500):
            if len(seen_live) >= len(stored):
                break
            await asyncio.sleep(0.02)
        assert not follower.done(), "the live query ended"
        assert seen_live == skus
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower


async def test_a_server_restarted_under_load_loses_nothing() -> None:
    """A throwaway server of our own (never the machine's shared one),
    stopped at once and started again while eight writers and a live query
    run: clients reconnect, the live query goes on."""
    server = ThrowawayServer.start()
    if server is None:
        reason = "no initdb/pg_ctl to start a throwaway PostgreSQL server"
        if os.environ.get("CALLIOPE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CALLIOPE_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    try:

        async def restart() -> None:
            await asyncio.sleep(0.1)
            await asyncio.to_thread(server.restart)

        await _hammer_through(f"{server.dsn}?schema=restarted", restart)
    finally:
        server.stop()


async def test_killed_backends_during_replicator_updates_lose_no_acknowledged_one() -> None:
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        target = f"{dsn}?schema={schema}"
        acknowledged = 0
        failed = 0
        async with calliope.open(target, replica_id="counting", poll_interval=0.01) as app:

            async def updater() -> None:
                nonlocal acknowledged, failed
                for _ in range(40):
                    try:
                        await app.replicator.update("hits", GCounter, lambda c: c.increment())
                    except calliope.StorageError:
                        failed += 1
                        await asyncio.sleep(0.02)
                        continue
                    acknowledged += 1
                    await asyncio.sleep(0.01)  # (spread over the kills)

            updaters = asyncio.gather(*(updater() for _ in range(4)))
            for _ in range(4):
                await asyncio.sleep(0.05)
                await _kill_backends(dsn, schema)
            await updaters
        async with calliope.open(target, replica_id="reader", poll_interval=0.01) as reader:
            value = (await reader.replicator.get("hits", GCounter)).value
        # Every acknowledged increment is there; a failed one may be too (its
        # commit's outcome was unknown), never twice.
        assert acknowledged <= value <= acknowledged + failed


def _lost() -> calliope.StorageError:
    """The error a write meets when its connection is lost."""
    error = calliope.StorageError("lost")
    error.__cause__ = psycopg.OperationalError("server closed the connection unexpectedly")
    return error


@pytest.mark.parametrize("when", ["after the commit", "before the commit", "every time"])
async def test_a_write_whose_connection_is_lost_is_applied_once(
    monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A lost connection: if the group was committed (the loss came with the
    commit's answer) its write id finds it and the persist succeeds; if not,
    it is written again; if it never can be, StorageError and nothing
    written. Never twice."""
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        async with calliope.open(f"{dsn}?schema={schema}") as app:
            stream = app.journal.event_stream("s", ItemAdded)
            await stream.persist(ItemAdded("before"))
            real = PostgresEventLog._write_group
            calls = 0

            async def flaky(self: PostgresEventLog, *arguments: Any) -> Any:
                nonlocal calls
                calls += 1
                if when == "every time" or (when == "before the commit" and calls == 1):
                    raise _lost()
                result = await real(self, *arguments)
                if when == "after the commit" and calls == 1:
                    raise _lost()
                return result

            monkeypatch.setattr(PostgresEventLog, "_write_group", flaky)
            if when == "every time":
                with pytest.raises(calliope.StorageError):
                    await stream.persist(ItemAdded("x"))
            else:
                envelope = await stream.persist(ItemAdded("x"))
                assert envelope.sequence == 2
            monkeypatch.setattr(PostgresEventLog, "_write_group", real)
            skus = [e.event.sku async for e in stream.query()]
            assert skus == (["before"] if when == "every time" else ["before", "x"])
            await stream.persist(ItemAdded("next"))
            assert [e.sequence async for e in stream.query()] == list(range(1, len(skus) + 2))


async def test_a_transaction_holding_a_feed_number_holds_back_later_writers_not_readers() -> None:
    """Overlapping transactions, one held open on purpose after taking the
    next feed number (as a slow writer does): a faster writer waits for the
    number after it (it cannot commit past it), and the feed shows nothing
    past what is committed; once the slow one commits, the fast one's event
    follows it in the feed, and resuming gives exactly the rest."""
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        async with calliope.open(f"{dsn}?schema={schema}") as app:
            await app.journal.event_stream("a", ItemAdded).persist(ItemAdded("first"))
            feed = app.journal.feed(ItemAdded)
            async with await psycopg.AsyncConnection.connect(dsn) as slow:
                await slow.execute(
                    f'UPDATE "{schema}".feed_counter SET next = next + 1 WHERE id = 1'
                )
                fast = asyncio.create_task(
                    app.journal.event_stream("b", ItemAdded).persist(ItemAdded("fast"))
                )
                await asyncio.sleep(0.5)
                assert not fast.done(), "a later writer committed past a held feed number"
                assert [e.event.sku async for e in feed.query()] == ["first"]
                await slow.commit()
            await asyncio.wait_for(fast, 10)
            found = await feed.query().to_list()
            assert [e.event.sku for e in found] == ["first", "fast"]
            assert found[0].position is not None and found[1].position is not None
            assert found[1].position.entry == found[0].position.entry + 2  # (the slow one's hole)
            rest = await feed.query(after=found[0].position).to_list()
            assert [e.event.sku for e in rest] == ["fast"]


async def test_an_unreachable_server_is_one_clear_error_at_once() -> None:
    """Nothing listens on the port: StorageError saying so within seconds,
    and the command prints one line."""
    started = asyncio.get_running_loop().time()
    with pytest.raises(calliope.StorageError, match=r"refused|connect"):
        async with calliope.open("postgresql://postgres@127.0.0.1:1/none"):
            pass
    assert asyncio.get_running_loop().time() - started < 8
    done = subprocess.run(
        [sys.executable, "-m", "calliope", "streams", "postgresql://postgres@127.0.0.1:1/none"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
