"""The embedded default: one directory holds a whole store."""

from __future__ import annotations

import asyncio
import os

from calliope.adapters.files.event_log import FileEventLog
from calliope.adapters.files.layout import ReplicaLease, ensure_root
from calliope.adapters.files.snapshots import FileSnapshots
from calliope.errors import AppClosedError, StorageError
from calliope.shell.ports import Durability

__all__ = ["FileStore"]


class FileStore:
    """Implements :class:`calliope.shell.ports.StorePort` on a directory.

    The constructor does no I/O; :meth:`open` creates the directory (0700),
    reads or creates its default replica id, and takes the replica lease.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        replica_id: str | None,
        durability: Durability,
        segment_bytes: int,
        poll_interval: float,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self._requested_replica = replica_id
        self._replica: str | None = None
        self._lease: ReplicaLease | None = None
        self._extra_leases: dict[str, ReplicaLease] = {}
        self._leasing = asyncio.Lock()
        self.events = FileEventLog(
            self.root,
            durability=durability,
            segment_bytes=segment_bytes,
            poll_interval=poll_interval,
        )
        self.snapshots = FileSnapshots(self.root)

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
        self._lease = await asyncio.to_thread(ReplicaLease, self.root, replica)
        self._replica = replica

    async def lease(self, replica_id: str) -> None:
        if replica_id == self._replica or replica_id in self._extra_leases:
            return
        async with self._leasing:  # one at a time: two first uses share one lease
            if replica_id not in self._extra_leases:
                lease = await asyncio.to_thread(ReplicaLease, self.root, replica_id)
                self._extra_leases[replica_id] = lease

    async def aclose(self) -> None:
        try:
            await self.events.aclose()
        finally:
            for lease in [self._lease, *self._extra_leases.values()]:
                if lease is not None:
                    lease.release()
            self._lease = None
            self._extra_leases.clear()
