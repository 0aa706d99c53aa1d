"""A separate process that uses ``app.replicator`` on a file store, for the
multi-process replicator tests (tests/integration/test_replicator_processes.py).

Each mode opens the store in DIR as replica REPLICA and uses the key KEY:

python -m tests.integration.replicator_worker increment DIR REPLICA KEY N TOTAL
    N GCounter increments, each awaited (replicas=1), then wait until the
    counter is at least TOTAL; prints ``{"start": v, "value": v}``: the value
    when the key started here, and when the wait returned
python -m tests.integration.replicator_worker orset DIR REPLICA KEY BARRIER PARTIES ADDS REMOVES
    start the key, meet the PARTIES (comma-separated replica ids) at the
    barrier (files in the directory BARRIER), then one update adding ADDS
    and removing REMOVES (comma-separated elements, may be empty), then add
    the marker ``done:REPLICA`` and wait until every party's marker is
    present; prints ``{"seen": ..., "value": [...]}``: what the update saw
    of each element when it was prepared (an added one: present or not; a
    removed one: present or not, and the dots of its adds not yet stable),
    and the final set without the markers
python -m tests.integration.replicator_worker rga DIR REPLICA KEY BARRIER PARTIES TEXT TOTAL
    start the key, meet the PARTIES at the barrier, then type TEXT one
    character per update, each at the end of the text as this replica sees
    it, then wait until the text has TOTAL elements; prints
    ``{"value": [...]}``
python -m tests.integration.replicator_worker acked DIR REPLICA KEY
    increment the GCounter forever, one awaited update at a time; after each
    acknowledged update print ``{"n": own increments acknowledged, "value":
    v}`` and flush (until killed)
python -m tests.integration.replicator_worker need DIR REPLICA KEY REPLICAS TIMEOUT
    one increment with ``update(..., replicas=REPLICAS, timeout=TIMEOUT)``;
    prints ``{"ok": true, "value": v}`` or, on ReplicationTimeout,
    ``{"ok": false, "acknowledged": a, "required": r}``
python -m tests.integration.replicator_worker hold DIR REPLICA KEY STOPFILE
    start the GCounter key, print ``ready``, and stay alive (heartbeating,
    applying and reporting) until stdin closes or the file STOPFILE exists

Any other exception ends the process with a traceback (exit status 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import calliope

WAIT = 120.0
"""The longest any wait in a worker lasts (seconds); the machine may be slow."""

HEARTBEAT_INTERVAL = 0.2
FAILURE_TIMEOUT = 1.0


def open_app(directory: str, replica: str, poll_interval: float = 0.01) -> calliope.App:
    return calliope.open(
        directory,
        replica_id=replica,
        poll_interval=poll_interval,
        heartbeat_interval=HEARTBEAT_INTERVAL,
        failure_timeout=FAILURE_TIMEOUT,
    )


def emit(line: object) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def split(items: str) -> list[str]:
    return [item for item in items.split(",") if item]


async def barrier(directory: str, replica: str, parties: list[str]) -> None:
    """Until every party has reached the barrier (a file each in ``directory``)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"ready-{replica}").touch()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not all((path / f"ready-{party}").exists() for party in parties):
        if loop.time() > deadline:
            raise TimeoutError(f"the parties {parties} did not all reach the barrier")
        await asyncio.sleep(0.002)


async def increment(directory: str, replica: str, key: str, count: str, total: str) -> None:
    async with open_app(directory, replica) as app:
        replicator = app.replicator
        start = (await replicator.get(key, calliope.GCounter)).value
        for _ in range(int(count)):
            await replicator.update(key, calliope.GCounter, lambda counter: counter.increment())
        target = int(total)
        state = await replicator.wait_until(
            key, calliope.GCounter, lambda counter: counter.value >= target, timeout=WAIT
        )
        emit({"start": start, "value": state.value})


async def orset(
    directory: str,
    replica: str,
    key: str,
    barrier_dir: str,
    parties: str,
    adds: str,
    removes: str,
) -> None:
    # A long poll interval: what the others write reaches this process at most
    # every half second, so updates made at the barrier are concurrent.
    async with open_app(directory, replica, poll_interval=0.5) as app:
        replicator = app.replicator
        await replicator.get(key, calliope.ORSet)
        everyone = split(parties)
        await barrier(barrier_dir, replica, everyone)
        seen: dict[str, Any] = {}

        def prepare(state: calliope.ORSet) -> list[object]:
            seen.clear()
            ops: list[object] = []
            for element in split(adds):
                seen[f"add {element}"] = element in state
                ops.append(state.add(element))
            for element in split(removes):
                dots = state.dots.get(element, frozenset())
                seen[f"remove {element}"] = {
                    "present": element in state,
                    "dots": sorted([str(r), int(c)] for r, c in dots),
                }
                ops.append(state.remove(element))
            return ops

        if adds or removes:  # a reader only adds its marker
            await replicator.update(key, calliope.ORSet, prepare)
        await replicator.update(key, calliope.ORSet, lambda state: state.add(f"done:{replica}"))
        markers = {f"done:{party}" for party in everyone}
        state = await replicator.wait_until(
            key, calliope.ORSet, lambda state: markers <= state.value, timeout=WAIT
        )
        value = sorted(str(e) for e in state.value if not str(e).startswith("done:"))
        emit({"seen": seen, "value": value})


async def rga(
    directory: str,
    replica: str,
    key: str,
    barrier_dir: str,
    parties: str,
    text: str,
    total: str,
) -> None:
    async with open_app(directory, replica) as app:
        replicator = app.replicator
        await replicator.get(key, calliope.RGA)
        await barrier(barrier_dir, replica, split(parties))

        def at_the_end(character: str) -> Callable[[calliope.RGA], object]:
            return lambda state: state.insert(len(state), character)

        for character in text:
            await replicator.update(key, calliope.RGA, at_the_end(character))
        size = int(total)
        state = await replicator.wait_until(
            key, calliope.RGA, lambda state: len(state.value) >= size, timeout=WAIT
        )
        emit({"value": list(state.value)})


async def acked(directory: str, replica: str, key: str) -> None:
    async with open_app(directory, replica) as app:
        replicator = app.replicator
        n = 0
        while True:
            state = await replicator.update(
                key, calliope.GCounter, lambda counter: counter.increment()
            )
            n += 1
            emit({"n": n, "value": state.value})


async def need(directory: str, replica: str, key: str, replicas: str, timeout: str) -> None:
    async with open_app(directory, replica) as app:
        try:
            state = await app.replicator.update(
                key,
                calliope.GCounter,
                lambda counter: counter.increment(),
                replicas=int(replicas),
                timeout=float(timeout),
            )
        except calliope.ReplicationTimeout as error:
            emit({"ok": False, "acknowledged": error.acknowledged, "required": error.required})
        else:
            emit({"ok": True, "value": state.value})


async def hold(directory: str, replica: str, key: str, stopfile: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def read_stdin() -> None:
        sys.stdin.read()  # until stdin closes
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_stdin, daemon=True).start()
    async with open_app(directory, replica) as app:
        await app.replicator.get(key, calliope.GCounter)
        print("ready", flush=True)
        while not stop.is_set() and not Path(stopfile).exists():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)


MODES: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
    "increment": increment,
    "orset": orset,
    "rga": rga,
    "acked": acked,
    "need": need,
    "hold": hold,
}


def main() -> None:
    mode, *args = sys.argv[1:]
    asyncio.run(MODES[mode](*args))


if __name__ == "__main__":
    main()
