"""Snapshot benchmark: how long a large snapshot holds the event loop.

Run: ``.venv/bin/python -m benchmarks.snapshots [--mib 50] [--runs 3]``.

A ticker task sleeps 1 ms in a loop and records how late each wake-up is;
the worst lateness while ``save_snapshot`` or ``load_snapshot`` of a state
holding one ``--mib`` MiB ``bytes`` field runs is the longest the loop was
held (by a step on the loop, or by a worker thread holding the GIL). The
baselines are the worst lateness of the same ticker on an idle loop, and
while a worker thread computes CRCs (the GIL released: what competing for
the CPU alone costs the loop on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import zlib
from collections.abc import Awaitable
from typing import Any

import attrs

import calliope
from benchmarks.report import header, row


@calliope.event_type("bench.blob-state")
@attrs.frozen
class BlobState:
    name: str
    blob: bytes


async def worst_stall(action: Awaitable[Any]) -> tuple[float, float, int]:
    """(worst ticker lateness, seconds ``action`` took, late ticks > 20 ms) while it runs."""
    lateness: list[float] = []
    running = True

    async def tick() -> None:
        while running:
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - due)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    lateness.clear()
    start = time.perf_counter()
    await action
    seconds = time.perf_counter() - start
    running = False
    await ticker
    return max(lateness, default=0.0), seconds, sum(1 for late in lateness if late > 0.02)


def crc_for(seconds: float, data: bytes) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        zlib.crc32(data)


async def measure(target: str, state: BlobState, runs: int, store: str) -> None:
    worst_save = worst_load = worst_busy = 0.0
    async with calliope.open(target, replica_id="bench") as app:
        for run in range(runs):
            sequence = run + 1
            save = await worst_stall(app.snapshots.save_snapshot("blob", state, sequence=sequence))
            load = await worst_stall(app.snapshots.load_snapshot("blob", BlobState))
            base = await worst_stall(asyncio.sleep(max(save[1], load[1])))
            busy = await worst_stall(asyncio.to_thread(crc_for, max(save[1], load[1]), state.blob))
            print(
                f"  run {run + 1}: save worst stall {save[0] * 1e3:6.1f} ms "
                f"({save[2]} ticks > 20 ms, {save[1] * 1e3:5.0f} ms total)   "
                f"load worst stall {load[0] * 1e3:6.1f} ms "
                f"({load[2]} ticks > 20 ms, {load[1] * 1e3:5.0f} ms total)   "
                f"baselines: idle {base[0] * 1e3:4.1f} ms, busy thread {busy[0] * 1e3:4.1f} ms"
            )
            worst_save, worst_load = max(worst_save, save[0]), max(worst_load, load[0])
            worst_busy = max(worst_busy, busy[0])
        loaded = await app.snapshots.load_snapshot("blob", BlobState)
        assert loaded is not None and loaded.state == state
    for what, stall in (("save", worst_save), ("load", worst_load)):
        print(
            row(
                f"{store}: {what}, worst loop stall",
                stall * 1e3,
                "ms",
                worst_busy * 1e3,
                "a busy thread",
                decimals=1,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    state = BlobState("big", os.urandom(options.mib * 1024 * 1024))
    header(f"snapshot of a {options.mib} MiB bytes field: worst event-loop stall")
    with tempfile.TemporaryDirectory() as directory:
        print(" file store")
        asyncio.run(measure(os.path.join(directory, "data"), state, options.runs, "file store"))
    print(" memory store")
    asyncio.run(measure("memory://bench-snapshots", state, options.runs, "memory store"))


if __name__ == "__main__":
    main()
