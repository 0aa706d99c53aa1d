"""The embedded default: one directory holds a whole store."""

from __future__ import annotations

import asyncio
import contextlib
import os

from calliope.adapters.files.changes import FileChanges
from calliope.adapters.files.disk import OS_DISK, Disk
from calliope.adapters.files.event_log import FileEventLog
from calliope.adapters.files.layout import ReplicaLease, ensure_root
from calliope.adapters.files.snapshots import FileSnapshots
from calliope.errors import AppClosedError, StorageError
from calliope.shell.ports import Durability

__all__ = ["FileStore"]


class FileStore:
    """Implements :class:`calliope.shell.ports.StorePort` on a directory.

    Its writers write and sync files through ``disk`` (the real calls by
    default; tests pass one that injects faults). The constructor does no
    I/O; :meth:`open` creates the directory (0700), reads or creates its
    default replica id, and takes the replica lease.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        replica_id: str | None,
        durability: Durability,
        segment_bytes: int,
        poll_interval: float,
        disk: Disk = OS_DISK,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self._requested_replica = replica_id
        self._replica: str | None = None
        self._lease: ReplicaLease | None = None
        self._extra_leases: dict[str, ReplicaLease] = {}
        self._leasing = asyncio.Lock()
        self.changes = FileChanges(self.root, poll_interval=poll_interval)
        self._log = FileEventLog(
            self.root,
            durability=durability,
            segment_bytes=segment_bytes,
            changes=self.changes,
            disk=disk,
        )
        self.snapshots = FileSnapshots(self.root, disk=disk)

    @property
    def plain(self) -> FileEventLog:
        return self._log

    @property
    def replicated(self) -> FileEventLog:
        return self._log

    @property
    def replica_id(self) -> str:
        if self._replica is None:
            raise AppClosedError("the store is not open; use `async with calliope.open(...)`")
        return self._replica

    async def open(self) -> None:
        try:
            default = await asyncio.to_thread(ensure_root, self.root)
        except OSError as error:
            raise StorageError(
                f"cannot use {self.root} as a Calliope data directory: {error.strerror or error}; "
                f"pass the path of a directory Calliope may create or that it created"
            ) from error
        replica = self._requested_replica or default
        self._lease = await _take_lease(self.root, replica)
        self._replica = replica

    async def lease(self, replica_id: str) -> None:
        if replica_id == self._replica or replica_id in self._extra_leases:
            return
        async with self._leasing:  # one at a time: two first uses share one lease
            if replica_id not in self._extra_leases:
                self._extra_leases[replica_id] = await _take_lease(self.root, replica_id)

    async def aclose(self) -> None:
        try:
            await self.changes.aclose()
            await self._log.aclose()
        finally:
            for lease in [self._lease, *self._extra_leases.values()]:
                if lease is not None:
                    lease.release()
            self._lease = None
            self._extra_leases.clear()


async def _take_lease(root: str, replica_id: str) -> ReplicaLease:
    """Take a replica lease in a worker thread. If the caller is cancelled
    meanwhile, the lease the thread still takes is released at once: a
    cancelled open never leaks one."""
    taking = asyncio.ensure_future(asyncio.to_thread(ReplicaLease, root, replica_id))
    try:
        return await asyncio.shield(taking)
    except asyncio.CancelledError:
        # Let the thread finish (it is quick) and release what it took
        # before giving up, so the id is free as soon as the open has ended;
        # if cancelled again meanwhile, release it when the thread is done.
        taking.add_done_callback(_release_unclaimed)
        with contextlib.suppress(BaseException):
            await taking
        raise


def _release_unclaimed(taking: asyncio.Future[ReplicaLease]) -> None:
    if not taking.cancelled() and taking.exception() is None:
        taking.result().release()  # idempotent
