"""Contract cases for change notification (``StorePort.changes``, ChangesPort).

A watcher wakes after appends to its stream's plain or replica logs, by
another store or its own, every watcher of the stream wakes, and appends
to other streams (or made before the watch) do not wake it.
"""

from __future__ import annotations

import asyncio
import contextlib

from calliope.testing.contract._support import (
    _T0,
    QUIET_SECONDS,
    StoreFactory,
    _case,
    _events,
    _expect,
    _Ids,
    _waiting,
    _woken,
    opened,
)


@_case
async def watch_wakes_on_append_by_another_store(new_store: StoreFactory) -> None:
    """A watcher's wait() returns after another store on the same storage
    appends to the stream's plain log; the watcher's context closes cleanly
    and a new one works the same."""
    ids = _Ids()
    async with opened(new_store) as watching, opened(new_store) as writing:
        stream = ids("s")
        for round_ in range(2):
            async with watching.changes.watch(stream) as watcher, _waiting(watcher) as task:
                await writing.plain.append(
                    stream, "w", _events(1, round_), expected_sequence=None, timestamp_us=_T0
                )
                await _woken(task, f"another store appended to the plain log (watch {round_ + 1})")


@_case
async def watch_wakes_on_own_append(new_store: StoreFactory) -> None:
    """A watcher wakes after its own store appends to the stream."""
    ids = _Ids()
    async with opened(new_store) as store:
        stream = ids("s")
        async with store.changes.watch(stream) as watcher, _waiting(watcher) as task:
            await store.plain.append(
                stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0
            )
            await _woken(task, "its own store appended to the plain log")


@_case
async def watch_wakes_on_replica_append(new_store: StoreFactory) -> None:
    """A watcher's wait() returns after another store appends to one of the
    stream's replica logs (a new one, then an existing one)."""
    ids = _Ids()
    async with opened(new_store) as watching, opened(new_store) as writing:
        stream = ids("s")
        async with watching.changes.watch(stream) as watcher:
            for round_ in range(2):
                async with _waiting(watcher) as task:
                    await writing.replicated.append_replica(
                        stream,
                        writing.replica_id,
                        _events(1, round_),
                        observed={},
                        timestamp_us=_T0,
                    )
                    await _woken(
                        task, f"another store appended to a replica log (append {round_ + 1})"
                    )


@_case
async def watch_ignoring_a_replica_wakes_for_the_others(new_store: StoreFactory) -> None:
    """A watcher ignoring one replica still wakes when another replica's log
    grows, whether another store or its own appended it."""
    ids = _Ids()
    async with opened(new_store) as watching, opened(new_store) as writing:
        stream = ids("s")
        async with watching.changes.watch(stream, ignoring="ignored") as watcher:
            for round_, store in enumerate((writing, watching)):
                async with _waiting(watcher) as task:
                    await store.replicated.append_replica(
                        stream, ids(f"r{round_}"), _events(1), observed={}, timestamp_us=_T0
                    )
                    await _woken(task, f"replica r{round_} appended (round {round_ + 1})")


@_case
async def watch_wakes_every_watcher(new_store: StoreFactory) -> None:
    """Many watchers on one stream, in one store or several, all wake after
    one append."""
    ids = _Ids()
    async with opened(new_store) as one, opened(new_store) as two, opened(new_store) as writing:
        stream = ids("s")
        async with contextlib.AsyncExitStack() as stack:
            tasks = []
            for store in (one, one, one, two, two):
                watcher = await stack.enter_async_context(store.changes.watch(stream))
                tasks.append(await stack.enter_async_context(_waiting(watcher)))
            await writing.plain.append(
                stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0
            )
            for index, task in enumerate(tasks):
                await _woken(task, f"an append (watcher {index + 1} of {len(tasks)})")


@_case
async def watch_ignores_other_streams(new_store: StoreFactory) -> None:
    """A watcher is not woken by appends to another stream, nor by what its
    stream held before it was created."""
    ids = _Ids()
    async with opened(new_store) as watching, opened(new_store) as writing:
        busy, quiet = ids("busy"), ids("quiet")
        await writing.plain.append(quiet, "w", _events(2), expected_sequence=None, timestamp_us=_T0)
        async with (
            watching.changes.watch(quiet) as quiet_watcher,
            watching.changes.watch(busy) as busy_watcher,
            _waiting(quiet_watcher) as quiet_task,
            _waiting(busy_watcher) as busy_task,
        ):
            await writing.plain.append(
                busy, "w", _events(1), expected_sequence=None, timestamp_us=_T0
            )
            await _woken(busy_task, "an append to its stream")
            await asyncio.sleep(QUIET_SECONDS)
            _expect(
                not quiet_task.done(),
                "a watcher woke though only another stream was appended to",
            )
