"""A writer process for the feed tests: slow or fast, several streams.

python -m tests.integration.feed_worker DIR REPLICA SLOW COUNT SEED

persists COUNT events from 4 tasks to its own plain streams, a plain
stream every worker shares, and its replica of a replicated stream. With
SLOW=1 every fdatasync is followed by a random pause of up to 30 ms, so its
writes stay taken-but-uncommitted for long while faster writers commit
after them (os.fdatasync is wrapped before calliope is imported: the file
store's writers captured it then).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from typing import Any


def _slow_down(seed: int) -> None:
    real = os.fdatasync
    pauses = random.Random(seed)

    def fdatasync(fd: Any) -> None:
        real(fd)
        time.sleep(pauses.random() * 0.03)

    os.fdatasync = fdatasync


async def write(directory: str, replica: str, count: int, seed: int) -> None:
    import calliope
    from tests.integration.events import ItemAdded

    choices = random.Random(seed)
    async with calliope.open(directory, replica_id=replica) as app:
        journal = app.journal
        replicated = journal.replicated_event_stream("feed/rep", ItemAdded)

        async def task(number: int) -> None:
            for n in range(number, count, 4):
                sku = f"{replica}-{n}"
                where = choices.randrange(3)
                if where == 0:
                    await journal.event_stream(f"feed/{replica}-{n % 3}", ItemAdded).persist(
                        ItemAdded(sku)
                    )
                elif where == 1:
                    await journal.event_stream("feed/shared", ItemAdded).persist(ItemAdded(sku))
                else:
                    await replicated.persist(ItemAdded(sku))
                await asyncio.sleep(choices.random() * 0.002)

        await asyncio.gather(*(task(number) for number in range(4)))


if __name__ == "__main__":
    directory, replica, slow, count, seed = sys.argv[1:6]
    if slow == "1":
        _slow_down(int(seed))
    asyncio.run(write(directory, replica, int(count), int(seed)))
