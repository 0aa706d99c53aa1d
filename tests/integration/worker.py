"""A separate process that writes to a file store, for multi-process tests.

python -m tests.integration.worker persist DIR REPLICA STREAM COUNT
    persist COUNT events one by one (each awaited), then exit
python -m tests.integration.worker hammer DIR REPLICA STREAM TASKS
    persist forever from TASKS concurrent tasks; print each acknowledged
    event's sku on stdout as soon as persist returns (until killed)
python -m tests.integration.worker follow DIR REPLICA STREAM COUNT
    live-query STREAM and print each event's sku until COUNT were seen
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

import calliope
from tests.integration.events import ItemAdded


async def persist(directory: str, replica: str, stream_id: str, count: int) -> None:
    async with calliope.open(directory, replica_id=replica) as app:
        stream = app.journal.event_stream(stream_id, ItemAdded)
        for n in range(count):
            await stream.persist(ItemAdded(f"{replica}-{n}"))


async def hammer(directory: str, replica: str, stream_id: str, tasks: int) -> None:
    async with calliope.open(directory, replica_id=replica) as app:
        stream = app.journal.event_stream(stream_id, ItemAdded)
        out = sys.stdout

        async def writer(task: int) -> None:
            n = 0
            while True:
                sku = f"{task}-{n}"
                if n % 3 == 2:
                    await stream.persist_all([ItemAdded(sku, 1), ItemAdded(sku, 2)])
                    out.write(f"{sku} 2\n")
                else:
                    await stream.persist(ItemAdded(sku))
                    out.write(f"{sku} 1\n")
                out.flush()
                n += 1

        await asyncio.gather(*(writer(task) for task in range(tasks)))


async def follow(directory: str, replica: str, stream_id: str, count: int) -> None:
    async with calliope.open(directory, replica_id=replica) as app:
        stream = app.journal.event_stream(stream_id, ItemAdded)
        print("ready", flush=True)
        seen = 0
        async with stream.live_query() as live:
            async for envelope in live:
                print(envelope.event.sku, flush=True)
                seen += 1
                if seen == count:
                    return


async def replicate(directory: str, replica: str, stream_id: str, count: int) -> None:
    rng = random.Random(replica)
    async with calliope.open(directory, replica_id=replica) as app:
        stream = app.journal.replicated_event_stream(stream_id, ItemAdded)
        for n in range(count):
            await asyncio.sleep(rng.random() * 0.002)
            if rng.random() < 0.3:
                await stream.query().to_list()
            reply = await stream.persist(ItemAdded(f"{replica}-{n}"))
            line = {
                "dot": list(reply.envelope.dot),
                "version": reply.envelope.version.to_dict(),
                "concurrent": [list(e.dot) for e in reply.concurrent_updates],
            }
            print(json.dumps(line), flush=True)


def main() -> None:
    command, directory, replica, stream_id, number = sys.argv[1:6]
    actions = {"persist": persist, "hammer": hammer, "follow": follow, "replicate": replicate}
    action = actions[command]
    asyncio.run(action(directory, replica, stream_id, int(number)))


if __name__ == "__main__":
    main()
