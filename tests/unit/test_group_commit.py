"""GroupCommitter: groups, and where a group is flushed (inline or in a
worker thread) when several committers of one store have work."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from calliope.adapters.files.group_commit import FlushGate, GroupCommitter


class Log:
    """Records which thread flushed each group, and the groups."""

    def __init__(self) -> None:
        self.inline: list[list[int]] = []
        self.threaded: list[list[int]] = []
        self.loop_thread = threading.get_ident()

    def try_flush(self, requests: Sequence[int]) -> list[int] | None:
        self.inline.append(list(requests))
        return [r * 10 for r in requests]

    def flush(self, requests: Sequence[int]) -> list[int]:
        assert threading.get_ident() != self.loop_thread
        self.threaded.append(list(requests))
        return [r * 10 for r in requests]


async def test_a_lone_committer_flushes_inline_and_groups_what_queued() -> None:
    log = Log()
    committer: GroupCommitter[int, int] = GroupCommitter(log.flush, log.try_flush)
    assert await asyncio.gather(*(committer.submit(n) for n in range(5))) == [0, 10, 20, 30, 40]
    assert log.inline == [[0, 1, 2, 3, 4]] and log.threaded == []


async def test_committers_with_work_at_once_flush_in_worker_threads() -> None:
    """Writers on many streams at once: their fsyncs overlap in threads
    instead of running one after another on the loop (it once did, and 256
    writers on 256 streams were slower than one writer alone)."""
    gate = FlushGate()
    logs = [Log() for _ in range(3)]
    committers: list[GroupCommitter[int, int]] = [
        GroupCommitter(log.flush, log.try_flush, gate=gate) for log in logs
    ]
    results = await asyncio.gather(*(c.submit(n) for n, c in enumerate(committers)))
    assert results == [0, 10, 20]
    assert all(log.inline == [] and len(log.threaded) == 1 for log in logs)
    assert gate.active == 0
    # alone again: inline
    assert await committers[0].submit(7) == 70
    assert logs[0].inline == [[7]]
