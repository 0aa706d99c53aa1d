"""PostgreSQL faults: backends killed under load (``pg_terminate_backend``)."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg

import calliope
from tests.integration.events import ItemAdded
from tests.postgres import fresh_schema, postgres_dsn


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
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        target = f"{dsn}?schema={schema}"
        async with calliope.open(target, poll_interval=0.01) as app:
            stream = app.journal.event_stream("hammered", ItemAdded)
            acknowledged: list[str] = []
            failures: list[BaseException] = []
            seen_live: list[str] = []

            async def writer(task: int) -> None:
                for n in range(60):
                    sku = f"{task}-{n}"
                    try:
                        await stream.persist(ItemAdded(sku))
                    except calliope.StorageError as error:
                        failures.append(error)
                        continue
                    acknowledged.append(sku)
                    await asyncio.sleep(0.001)

            async def follow() -> None:
                async with app.journal.event_stream("hammered", ItemAdded).live_query() as live:
                    async for envelope in live:
                        seen_live.append(envelope.event.sku)

            follower = asyncio.create_task(follow())
            writers = asyncio.gather(*(writer(task) for task in range(8)))
            killed = 0
            for _ in range(5):
                await asyncio.sleep(0.05)
                killed += await _kill_backends(dsn, schema)
            await writers
            assert killed >= 2
            await stream.persist(ItemAdded("after"))  # the pool reconnected
            acknowledged.append("after")
            stored = [envelope async for envelope in stream.query()]
            skus = [envelope.event.sku for envelope in stored]
            assert [e.sequence for e in stored] == list(range(1, len(stored) + 1))
            assert len(skus) == len(set(skus)), "an event was stored twice"
            assert set(acknowledged) <= set(skus), "an acknowledged event was lost"
            # The live query went on through its listener's death: it saw
            # everything (a killed backend may delay it a few seconds).
            for _ in range(1500):
                if len(seen_live) >= len(stored):
                    break
                await asyncio.sleep(0.02)
            if follower.done():
                follower.result()  # (raises what ended it)
            assert len(seen_live) == len(skus), (len(seen_live), len(skus))
            assert seen_live == skus, [
                (i, a, b) for i, (a, b) in enumerate(zip(seen_live, skus, strict=False)) if a != b
            ][:5]
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
