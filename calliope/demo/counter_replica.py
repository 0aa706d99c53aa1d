"""One replica of the demo's page-view counter, in its own process.

python -m calliope.demo.counter_replica DIR NAME count N TOTAL
    increment the counter "views" N times and add NAME to the set
    "visitors", then wait until the counter reaches TOTAL (every process's
    increments) and print what this replica sees
python -m calliope.demo.counter_replica DIR NAME hold
    hold a replica of "views" (applying what others write, beating its
    heartbeat) until stdin closes; prints "ready" once it holds it
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import calliope
from calliope import GCounter, ORSet


async def count(directory: str, name: str, times: int, total: int) -> None:
    async with calliope.open(directory, replica_id=name) as app:
        for _ in range(times):
            await app.replicator.update("views", GCounter, lambda c: c.increment())
        await app.replicator.update("visitors", ORSet, lambda s: s.add(name))
        views = await app.replicator.wait_until(
            "views", GCounter, lambda c: c.value >= total, timeout=60
        )
        visitors = await app.replicator.get("visitors", ORSet)
        print(f"  {name:>8}: views={views.value}, visitors so far={sorted(visitors.value)}")


async def hold(directory: str, name: str) -> None:
    async with calliope.open(directory, replica_id=name) as app:
        await app.replicator.get("views", GCounter)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    directory, name, mode, *rest = sys.argv[1:]
    with contextlib.suppress(KeyboardInterrupt):  # (Ctrl-C stops the demo: no traceback)
        if mode == "count":
            asyncio.run(count(directory, name, int(rest[0]), int(rest[1])))
        else:
            asyncio.run(hold(directory, name))
