"""A replicator key's progress: reports, acknowledgements, read floors,
stability, compaction and CRDT snapshots.

Each key has a *reporter* (a task the replicator owns) that, whenever this
replica applied something, records its delivered vector through the
progress port (coalescing: at most one write in flight, then the newest),
and a *compactor* (another) that, apart from it so that acknowledgements
never wait on a snapshot:

* **compacts** the state at the stable point, computed by
  :func:`calliope.core.crdt.stable_point` over the reports that
  :func:`calliope.core.crdt.quorum.stability_reports` selects (every known
  replica's newest usable report; a replica that is not live stops holding
  stability back once its whole log is applied here); and
* **writes a CRDT snapshot** of the compacted state every
  ``SNAPSHOT_EVERY`` applied operations, but never spending more than about
  a tenth of the time on snapshots (a large state is snapshotted less
  often), and once more when the app closes.

Waiting for replicas (``update(..., replicas=n)``, ``get(..., replicas=n)``)
reads the other replicas' reports at most once per poll interval, however
many callers wait (``get`` reads them once more when it starts). Every
replica's last report counts for what it applied, a stopped one's too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from calliope.core.crdt.quorum import acknowledgements, read_floor, stability_reports
from calliope.core.crdt.stability import stable_point
from calliope.core.envelope import Dot
from calliope.core.version_vector import VersionVector
from calliope.errors import AppClosedError, CalliopeError, ReplicationTimeout
from calliope.shell.crdt_key import Changed, CRDTKey
from calliope.shell.crdt_storage import LARGE_STATE, state_size
from calliope.shell.heartbeat import Liveness

__all__ = ["COMPACT_EVERY", "SNAPSHOT_EVERY", "KeyProgress"]

logger = logging.getLogger("calliope")

COMPACT_EVERY = 256
"""Operations applied between two stability computations (and compactions)."""

SNAPSHOT_EVERY = 1000
"""Operations applied between two CRDT snapshots, at least."""

_RETRY = 0.5
"""Seconds before a reporter retries after a storage error."""


class KeyProgress:
    """The progress side of one :class:`CRDTKey` (see the module docstring)."""

    def __init__(self, key: CRDTKey, liveness: Liveness, *, poll_interval: float) -> None:
        self.key = key
        self.liveness = liveness
        self.poll_interval = poll_interval
        self._reports: dict[str, VersionVector] = {}
        self._fetched = -float("inf")
        self._token: object = None
        self._fetching: asyncio.Future[None] | None = None
        self._usable: dict[str, VersionVector] = {}
        self.stable = VersionVector()
        self._dirty = asyncio.Event()
        self._due = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._compacted_at = 0
        self._snapshot_at = 0
        self._snapshot_after = 0.0  # monotonic time before which no snapshot is taken
        self.polled = Changed()  # fires after each read of the reports, and at close

    # -- the reporter ---------------------------------------------------------

    def start(self) -> None:
        """Start the reporter and the compactor (idempotent; not after :meth:`stop`)."""
        if not self._tasks and not self._stopping:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._report()), loop.create_task(self._maintain())]

    def touched(self) -> None:
        """This replica applied something: report it soon."""
        self._dirty.set()

    def wrote(self) -> None:
        """Progress was recorded (by a round, or the reporter): compact or
        snapshot if enough was applied since the last time."""
        applied = self.key.applied
        if (
            applied - self._compacted_at >= COMPACT_EVERY
            or applied - self._snapshot_at >= SNAPSHOT_EVERY
        ):
            self._due.set()

    async def _report(self) -> None:
        """Record progress whenever it moved (the newest, one write at a time)."""
        while not self._stopping:
            await self._dirty.wait()
            if self._stopping:
                break
            self._dirty.clear()
            try:
                await self.key.storage.report(self.key.counts)
            except CalliopeError as error:
                self._retry_later("recording progress", error)
                self._dirty.set()
                await self._pause(_RETRY)
                continue
            self.wrote()

    async def _maintain(self) -> None:
        """Compact, and snapshot, when enough was applied (apart from
        reporting, so acknowledgements never wait for a snapshot)."""
        while not self._stopping:
            await self._due.wait()
            if self._stopping:
                break
            self._due.clear()
            try:
                if self.key.applied - self._compacted_at >= COMPACT_EVERY:
                    await self.compact()
                if self.key.applied - self._snapshot_at >= SNAPSHOT_EVERY:
                    await self._pause(self._snapshot_after - time.monotonic())
                    if not self._stopping:
                        await self.compact()
                        await self.snapshot()
            except CalliopeError as error:
                self._retry_later("compacting or snapshotting", error)
                await self._pause(_RETRY)

    def _retry_later(self, what: str, error: CalliopeError) -> None:
        logger.warning("replicator key %r: %s failed (%s); retrying", self.key.key, what, error)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` (if positive), ended early by :meth:`stop`."""
        if seconds > 0 and not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), seconds)

    async def stop(self) -> None:
        """End the reporter; record the final progress and a snapshot if
        anything was applied since the last one."""
        self._stopping = True
        self._stopped.set()
        self.polled.close()
        self._dirty.set()
        self._due.set()
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.key.failure is not None:
            return
        try:
            await self.key.storage.report(self.key.counts)
            if self.key.applied > self._snapshot_at:
                await self.compact()
                await self.snapshot()
        except CalliopeError as error:
            logger.warning(
                "replicator key %r: the final progress or snapshot was not recorded (%s); "
                "the next start replays more operations",
                self.key.key,
                error,
            )

    # -- stability ------------------------------------------------------------

    async def compact(self) -> VersionVector:
        """Compute the stable point and compact the state there. O(replicas
        * origins) plus the CRDT's compaction."""
        key = self.key
        self._compacted_at = key.applied
        reports = await self.reports(force=True)
        live = await self.liveness.live(force=True)
        log_ends = {}
        for replica in await key.log.replicas(key.source.stream_id):
            version = await key.log.replica_version(key.source.stream_id, replica)
            log_ends[replica] = version.get(replica, 0)
        delivered = key.delivered
        chosen, self._usable = stability_reports(
            delivered, key.own, reports, self._usable, live=live, log_ends=log_ends
        )
        stable = stable_point(delivered, chosen)
        if not stable <= self.stable:
            state = key.state
            if state_size(state) > LARGE_STATE:  # off the loop; kept if nothing moved
                compacted = await asyncio.to_thread(state.compact, stable)
            else:
                compacted = state.compact(stable)
            async with key.lock:
                if key.state is state:
                    key.state = compacted
                    self.stable = stable.merge(self.stable)
        return self.stable

    async def snapshot(self) -> None:
        """Save the state (as it is now) as the key's CRDT snapshot."""
        key = self.key
        started = time.monotonic()
        applied = key.applied
        await key.storage.save(key.state, dict(key.counts), key.deleted_by)
        self._snapshot_at = applied
        took = time.monotonic() - started
        self._snapshot_after = time.monotonic() + 9 * took

    # -- other replicas -------------------------------------------------------

    async def reports(self, *, force: bool = False) -> dict[str, VersionVector]:
        """Every replica's last report on the key (this one's too), read at
        most once per poll interval unless ``force``d; concurrent callers
        share one read."""
        if not force and time.monotonic() - self._fetched < self.poll_interval:
            return self._reports
        if self._fetching is not None:  # join the read in flight
            await asyncio.shield(self._fetching)
            return self._reports
        fetching: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fetching = fetching
        try:
            await self._fetch()  # in this task: no hop when the port answers at once
            fetching.set_result(None)
        except BaseException as error:
            fetching.set_exception(error)
            fetching.exception()  # retrieved: the joiners, if any, raise it
            raise
        finally:
            self._fetching = None
        return self._reports

    async def _fetch(self) -> None:
        progress = self.key.storage.progress
        token = await progress.reporters_token(self.key.key)
        records = await progress.reports(self.key.key)
        self._token = token  # taken before the read: a reporter after it changes it
        self._reports = {record.replica_id: VersionVector(record.delivered) for record in records}
        self._fetched = time.monotonic()
        self.polled.fire()

    async def vectors(self, *, fresh: bool = False) -> list[VersionVector]:
        """This replica's delivered vector, then every other replica's last
        report (read now if ``fresh``, else at most a poll interval old).
        A replica that stopped still counts for what it applied."""
        reports = await self.reports(force=fresh)
        own = self.key.own
        return [self.key.delivered] + [
            vector for replica, vector in reports.items() if replica != own
        ]

    async def catch_up_with_reports(self) -> None:
        """Until this replica has applied everything any replica reported
        (read now): what an update prepares against then includes every
        update that returned anywhere before. O(replicas) when caught up;
        one ``stat`` while this replica is the key's only reporter."""
        if set(self._reports) <= {self.key.own}:
            token = await self.key.storage.progress.reporters_token(self.key.key)
            if token == self._token and self._fetched > -float("inf"):
                return  # still alone: nobody else has reported anything
        await self.wait_read_floor(1, None)

    async def wait_acknowledged(self, dot: Dot, replicas: int, timeout: float | None) -> None:
        """Until ``replicas`` replicas (this one counted) have applied ``dot``."""
        deadline = _deadline(timeout)
        while True:
            count = acknowledgements(dot, await self.vectors())
            if count >= replicas:
                return
            if not await self._sleep(deadline):
                raise ReplicationTimeout(
                    f"{count} of the {replicas} replicas asked for applied the update to "
                    f"{self.key.key!r} within {timeout}s; it is durable and spreads to the "
                    f"others when they run: wait again, or ask for fewer replicas",
                    acknowledged=count,
                    required=replicas,
                )

    async def wait_read_floor(self, replicas: int, timeout: float | None) -> None:
        """Until this replica has applied everything at least ``replicas``
        replicas have (there must be that many reporting on the key)."""
        deadline = _deadline(timeout)
        key = self.key
        fresh = True  # what was reported before the call is included
        while True:
            vectors = await self.vectors(fresh=fresh)
            fresh = False
            floor = read_floor(vectors, replicas) if len(vectors) >= replicas else None
            if floor is not None:
                if all(key.counts.get(origin, 0) >= count for origin, count in floor.items()):
                    return
                count = replicas
                wait: Callable[[], Awaitable[bool]] = lambda: key.changed.wait(  # noqa: E731
                    key.changed.generation, _remaining(deadline, self.poll_interval)
                )
            else:
                count = len(vectors)
                wait = lambda: self._sleep(deadline)  # noqa: E731
            key.check()
            if deadline is not None and time.monotonic() >= deadline:
                applied = sum(1 for vector in vectors if vector <= key.delivered)
                raise ReplicationTimeout(
                    f"reading {self.key.key!r} from {replicas} replicas: "
                    + (
                        f"only {count} replica(s) reported on it"
                        if floor is None
                        else "this replica has not applied yet what they have"
                    )
                    + f" within {_seconds(timeout)}; start more replicas, wait longer, or "
                    f"ask for fewer",
                    acknowledged=min(count, applied) if floor is not None else count,
                    required=replicas,
                )
            await wait()

    async def _sleep(self, deadline: float | None) -> bool:
        """Sleep a poll interval (less if the deadline is nearer); False once
        the deadline has passed. Raises AppClosedError if the app closes."""
        if deadline is not None and time.monotonic() >= deadline:
            return False
        polled = self.polled
        await polled.wait(polled.generation, _remaining(deadline, self.poll_interval))
        if polled.closed or self.key.changed.closed:
            raise AppClosedError(
                "the app closed while waiting for other replicas; what was written is "
                "durable and spreads when the app runs again"
            )
        self.key.check()
        return True


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None, most: float) -> float:
    if deadline is None:
        return most
    return max(0.0, min(most, deadline - time.monotonic()))


def _seconds(timeout: Any) -> str:
    return "no time limit" if timeout is None else f"{timeout}s"
