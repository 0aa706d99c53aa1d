"""A writer that dies in the middle of a write, for the feed tests.

python -m tests.integration.feed_crash_worker DIR WHERE

persists three events to stream ``cart-0``, then dies (``os._exit``) while
writing the fourth: WHERE=pwrite before its frame is written (its feed
entry taken), WHERE=fdatasync after the frame is written but before it is
synced and committed. The os functions are wrapped before calliope is
imported (the file store's writers captured them then).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

armed = False


def _die_at(where: str) -> None:
    real = getattr(os, where)

    def dying(*args: Any) -> Any:
        if armed:
            os._exit(7)
        return real(*args)

    setattr(os, where, dying)


async def main(directory: str) -> None:
    global armed
    import calliope
    from tests.integration.events import ItemAdded

    async with calliope.open(directory, replica_id="dying") as app:
        stream = app.journal.event_stream("cart-0", ItemAdded)
        for n in range(3):
            await stream.persist(ItemAdded(f"ok-{n}"))
        armed = True
        await stream.persist(ItemAdded("dies"))


if __name__ == "__main__":
    _die_at(sys.argv[2])
    asyncio.run(main(sys.argv[1]))
