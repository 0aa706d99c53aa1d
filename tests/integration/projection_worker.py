"""A projection that is killed while it catches up, for the crash tests.

python -m tests.integration.projection_worker DIR KILL_AT SAVE_EVERY

catches up projection ``counted`` (a count and a sum of the feed's
``ItemAdded`` quantities), saving every SAVE_EVERY events; SIGKILLs itself
when folding its KILL_AT-th event of this run (0: never), then prints the
state as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import calliope
import calliope.shell.projection
from tests.integration.events import ItemAdded


async def main(directory: str, kill_at: int) -> None:
    folded = 0

    def fold(state: dict[str, int], event: ItemAdded) -> dict[str, int]:
        nonlocal folded
        folded += 1
        if folded == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"count": state["count"] + 1, "sum": state["sum"] + event.quantity}

    async with calliope.open(directory, replica_id="projector") as app:
        projection = app.projection("counted", ItemAdded, fold, {"count": 0, "sum": 0})
        state = await projection.catch_up()
    print(json.dumps(state))


if __name__ == "__main__":
    calliope.shell.projection.SAVE_EVERY = int(sys.argv[3])
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
