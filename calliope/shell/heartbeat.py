"""This replica's heartbeat, and which replicas are live.

Once an app uses its replicator, a task it owns records a heartbeat through
the progress port every ``heartbeat_interval`` seconds, and a last one
saying it stopped when the app closes. A replica is *live* while its last
heartbeat says it runs and is younger than ``failure_timeout`` (by this
app's clock; replicas on several machines need clocks in step to well
within the failure timeout). This replica is always live to itself.

A replica that was silent past the failure timeout may have been taken for
failed by the others, who then stop waiting for it to compact; before such
a replica writes again it catches up with the store
(:meth:`Liveness.stale` tells the replicator to).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from calliope.core.crdt.quorum import is_live
from calliope.errors import CalliopeError, ReadOnlyStoreError
from calliope.shell.ports import ProgressPort
from calliope.shell.records import to_timestamp_us

__all__ = ["Liveness"]

logger = logging.getLogger("calliope")


class Liveness:
    """Beats this replica's heartbeat; tells which replicas are live."""

    def __init__(
        self,
        progress: ProgressPort,
        replica_id: str,
        clock: Callable[[], Any],
        *,
        heartbeat_interval: float,
        failure_timeout: float,
        poll_interval: float,
    ) -> None:
        self._progress = progress
        self.replica_id = replica_id
        self._clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.failure_timeout = failure_timeout
        self._poll_interval = poll_interval
        self._beat_at = -float("inf")  # monotonic time of the last heartbeat written
        self._task: asyncio.Task[None] | None = None
        self._read_only = False
        self._stop = asyncio.Event()
        self._live: set[str] = {replica_id}
        self._fetched = -float("inf")
        self.last: dict[str, tuple[int, bool]] = {}  # replica -> (beat us, running)

    def now_us(self) -> int:
        return to_timestamp_us(self._clock())

    async def start(self) -> None:
        """Write the first heartbeat, then keep beating (idempotent)."""
        if self._task is None and not self._read_only:
            try:
                await self.beat()
            except ReadOnlyStoreError:  # a read-only app reads, and beats nothing
                self._read_only = True
                return
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def beat(self) -> None:
        await self._progress.beat(self.replica_id, timestamp_us=self.now_us())
        self._beat_at = time.monotonic()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.heartbeat_interval)
                break
            except TimeoutError:
                pass
            try:
                await self.beat()
            except CalliopeError as error:
                logger.warning("replica %r: heartbeat failed (%s)", self.replica_id, error)

    @property
    def read_only(self) -> bool:
        """The store is read-only: this replica beats no heartbeat."""
        return self._read_only

    def stale(self) -> bool:
        """True when this replica's last heartbeat is older than the failure
        timeout (others may have taken it for failed)."""
        return time.monotonic() - self._beat_at > self.failure_timeout

    async def live(self, *, force: bool = False) -> set[str]:
        """The live replicas (this one included); heartbeats are read at most
        once per poll interval unless ``force``d. O(replicas)."""
        if force or time.monotonic() - self._fetched >= self._poll_interval:
            self._fetched = time.monotonic()
            records = await self._progress.heartbeats()
            now = self.now_us()
            timeout_us = int(self.failure_timeout * 1_000_000)
            self.last = {
                record.replica_id: (record.timestamp_us, record.running) for record in records
            }
            self._live = {
                record.replica_id
                for record in records
                if is_live(record.running, record.timestamp_us, now, timeout_us)
            } | {self.replica_id}
        return self._live

    async def stop(self) -> None:
        """Stop beating; record that this replica stopped."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        await asyncio.gather(task, return_exceptions=True)
        try:
            await self._progress.beat(self.replica_id, timestamp_us=self.now_us(), running=False)
        except CalliopeError as error:
            logger.warning("replica %r: the last heartbeat failed (%s)", self.replica_id, error)
