"""The embedded default: one directory holds a whole store."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator

from calliope.adapters.files.changes import FileChanges
from calliope.adapters.files.disk import OS_DISK, Disk
from calliope.adapters.files.event_log import FileEventLog
from calliope.adapters.files.feed_index import FeedIndex
from calliope.adapters.files.feed_reader import FileFeed
from calliope.adapters.files.fsutil import storage_error, storage_errors
from calliope.adapters.files.layout import ReplicaLease, ensure_root, read_root
from calliope.adapters.files.progress import FileProgress
from calliope.adapters.files.snapshots import FileSnapshots
from calliope.adapters.read_only import read_only_refused
from calliope.errors import AppClosedError, StorageError
from calliope.shell.ports import Durability, SnapshotRecord

__all__ = ["FileStore", "ReadOnlySnapshots"]


class FileStore:
    """Implements :class:`calliope.shell.ports.StorePort` on a directory.

    Its writers write and sync files through ``disk`` (the real calls by
    default; tests pass one that injects faults). The constructor does no
    I/O; :meth:`open` creates the directory (0700), reads or creates its
    default replica id, and takes the replica lease.

    ``read_only``: :meth:`open` only reads the default replica id of an
    existing store (StorageError if there is none), takes no lease and
    creates nothing; queries and snapshot loads work, every write raises
    :class:`calliope.ReadOnlyStoreError`. For inspecting a store this
    process cannot (or should not) write, such as a backup mounted
    read-only.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        replica_id: str | None,
        durability: Durability,
        segment_bytes: int,
        poll_interval: float,
        read_only: bool = False,
        disk: Disk = OS_DISK,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.read_only = read_only
        self._requested_replica = replica_id
        self._replica: str | None = None
        self._lease: ReplicaLease | None = None
        self._extra_leases: dict[str, ReplicaLease] = {}
        self._leasing = asyncio.Lock()
        self.changes = FileChanges(self.root, poll_interval=poll_interval)
        self._feed_index = FeedIndex(self.root, read_only=read_only)
        self._log = FileEventLog(
            self.root,
            durability=durability,
            segment_bytes=segment_bytes,
            changes=self.changes,
            read_only=read_only,
            disk=disk,
            feed_index=self._feed_index,
        )
        self.feed = FileFeed(self.root, self._feed_index, self.changes, self._log.reading_log)
        self.progress = FileProgress(self.root, read_only=read_only)
        snapshots = FileSnapshots(self.root, disk=disk)
        self.snapshots: FileSnapshots | ReadOnlySnapshots = (
            ReadOnlySnapshots(snapshots, self.root) if read_only else snapshots
        )

    @property
    def plain(self) -> FileEventLog:
        return self._log

    @property
    def replicated(self) -> FileEventLog:
        return self._log

    @property
    def catalog(self) -> FileEventLog:
        return self._log

    @property
    def replica_id(self) -> str:
        if self._replica is None:
            raise AppClosedError("the store is not open; use `async with calliope.open(...)`")
        return self._replica

    async def open(self) -> None:
        requested = self._requested_replica
        try:
            if self.read_only:
                default = await asyncio.to_thread(read_root, self.root, requested)
            else:
                default = await asyncio.to_thread(ensure_root, self.root, requested)
        except OSError as error:
            raise _open_error(self.root, error) from error
        replica = requested or default
        if not self.read_only:
            self._lease = await _take_lease(self.root, replica)
        try:
            with storage_errors(f"opening the feed index of {self.root}"):
                await asyncio.to_thread(self._feed_index.open)
        except BaseException:
            if self._lease is not None:
                self._lease.release()
                self._lease = None
            raise
        self._replica = replica

    async def lease(self, replica_id: str) -> None:
        if replica_id == self._replica or replica_id in self._extra_leases or self.read_only:
            return  # (read-only: nothing is written, so nothing is leased)
        async with self._leasing:  # one at a time: two first uses share one lease
            if replica_id not in self._extra_leases:
                self._extra_leases[replica_id] = await _take_lease(self.root, replica_id)

    async def aclose(self) -> None:
        try:
            self.progress.close()
            await self.changes.aclose()
            await self._log.aclose()
            self.feed.close()
            await asyncio.to_thread(self._feed_index.close)
        finally:
            for lease in [self._lease, *self._extra_leases.values()]:
                if lease is not None:
                    lease.release()
            self._lease = None
            self._extra_leases.clear()


def _open_error(root: str, error: OSError) -> StorageError:
    """The StorageError for an OSError raised while opening ``root``."""
    if isinstance(error, PermissionError) or error.errno == errno.EROFS:
        return storage_error(f"opening the Calliope data directory {root}", error)
    return StorageError(
        f"cannot use {root} as a Calliope data directory: {error.strerror or error}; "
        f"pass the path of a directory Calliope may create or that it created"
    )


async def _take_lease(root: str, replica_id: str) -> ReplicaLease:
    """Take a replica lease in a worker thread. If the caller is cancelled
    meanwhile, the lease the thread still takes is released at once: a
    cancelled open never leaks one. An OSError becomes a StorageError."""
    taking = asyncio.ensure_future(asyncio.to_thread(ReplicaLease, root, replica_id))
    try:
        return await asyncio.shield(taking)
    except OSError as error:
        raise storage_error(
            f"taking the lease of replica {replica_id!r} on {root}", error
        ) from error
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


class ReadOnlySnapshots:
    """The snapshot port of a store opened with ``read_only=True``: loads
    read the store, saves raise :class:`calliope.ReadOnlyStoreError`."""

    def __init__(self, snapshots: FileSnapshots, root: str) -> None:
        self._snapshots = snapshots
        self._root = root

    async def save(self, snapshot_id: str, record: SnapshotRecord) -> None:
        raise read_only_refused(self._root, f"saving snapshot {snapshot_id!r}")

    async def load(self, snapshot_id: str) -> SnapshotRecord | None:
        return await self._snapshots.load(snapshot_id)

    def ids(self, prefix: str | None) -> AsyncIterator[list[str]]:
        return self._snapshots.ids(prefix)

    async def check(self, snapshot_id: str) -> list[str]:
        return await self._snapshots.check(snapshot_id)
