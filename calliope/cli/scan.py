"""Reading a whole store as its readers do, to find damage: the scan behind
``calliope verify`` and ``calliope repair``.

Every log of every stream (Calliope's own ``$calliope/`` streams too) is
read to its end: each frame's checksum, each log's committed extent,
sequences that must follow on; and, across a replicated stream's logs,
that each replica's log holds the events the others' versions name (a
replica log deleted whole is found only so). Then the feed's index, then
every kept snapshot. A damaged log is noted and the scan goes on with the next, so
one run names every damaged log. O(size of the store); memory one page.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager, nullcontext

import attrs
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from calliope.cli.common import raw_store
from calliope.core.ids import RESERVED_PREFIX
from calliope.errors import CorruptJournalError
from calliope.shell.ports import StorePort

__all__ = ["DamagedLog", "Scan", "lost_replica_events", "scan_store", "scan_target"]


class MissingSequences(CorruptJournalError):
    """A log whose stored sequences do not follow on from 1."""


@attrs.frozen
class DamagedLog:
    """A log a reader refuses, or whose sequences do not follow on: the
    stream, the replica (None for a plain stream) and the error naming the
    file and offset (or the missing sequences); ``repairable``: False when a
    repair of it cannot mend it (a replica log that lost events others
    observed, or sequences missing from a log: only a backup can)."""

    stream_id: str
    replica_id: str | None
    error: CorruptJournalError
    repairable: bool = True

    def describe(self) -> str:
        log = self.stream_id if self.replica_id is None else f"{self.stream_id} ({self.replica_id})"
        return f"{log}: {self.error}"


@attrs.frozen
class Scan:
    """What a scan read, and the damage it found."""

    streams: int
    events: int
    feed_batches: int
    snapshots: int
    damaged_logs: tuple[DamagedLog, ...]
    feed_damage: str | None
    damaged_snapshots: tuple[str, ...]
    damaged_store: tuple[str, ...] = ()

    @property
    def intact(self) -> bool:
        return not (
            self.damaged_logs or self.feed_damage or self.damaged_snapshots or self.damaged_store
        )


async def _streams(store: StorePort) -> AsyncIterator[tuple[str, bool]]:
    """Every stream (Calliope's own too) and whether it is replicated, a
    page at a time."""
    for prefix in (None, RESERVED_PREFIX):
        async for page in store.catalog.list_streams(prefix):
            for stream_id, replicated in page:
                if prefix is None and stream_id.startswith(RESERVED_PREFIX):
                    continue
                yield stream_id, replicated


async def _count(items: AsyncIterator[object]) -> int:
    count = 0
    async for _ in items:
        count += 1
    return count


async def _read_log(
    store: StorePort, stream_id: str, replica_id: str | None
) -> tuple[int, dict[str, int]]:
    """Read one log to its end: its events, and the version of its last one
    ({}: none); CorruptJournalError where a reader refuses it, or
    :class:`MissingSequences` where its sequences do not follow on from 1."""
    reader = (
        store.plain.read(stream_id, 1, None)
        if replica_id is None
        else store.replicated.read_replica(stream_id, replica_id, 1)
    )
    events, expected = 0, 1
    last: dict[str, int] = {}
    async for batches in reader:
        for batch in batches:
            if batch.first_sequence != expected:
                log = "" if replica_id is None else f" (replica {replica_id!r})"
                raise MissingSequences(
                    f"stream {stream_id!r}{log} is missing sequences {expected}.."
                    f"{batch.first_sequence - 1} (its next stored batch starts at "
                    f"{batch.first_sequence}); restore them from a backup",
                    path="",
                    offset=-1,
                )
            expected = batch.last_sequence + 1
            events += len(batch.items)
            last = batch.last_version
    return events, last


def lost_replica_events(
    stream_id: str, versions: Mapping[str, Mapping[str, int]], unread: frozenset[str] = frozenset()
) -> list[DamagedLog]:
    """Replica logs of ``stream_id`` that lost acknowledged events: each
    log's last version (``versions``, by replica) names what its writer had
    observed of the others, so a replica whose own log holds less than
    another's version names (or that has no log left at all) lost events
    that were acknowledged, and that the other replica's later events
    depend on. ``unread``: replicas whose log could not be read (their
    damage is reported already). O(replicas^2)."""
    named: dict[str, tuple[int, str]] = {}
    for reader, version in versions.items():
        for replica, sequence in version.items():
            if replica != reader and sequence > named.get(replica, (0, ""))[0]:
                named[replica] = (sequence, reader)
    lost = []
    for replica, (sequence, reader) in sorted(named.items()):
        held = versions.get(replica, {}).get(replica, 0)
        if replica in unread or held >= sequence:
            continue
        where = f"holds {held} events" if replica in versions else "is missing"
        error = CorruptJournalError(
            f"replicated stream {stream_id!r}: the log of replica {replica!r} {where}, but "
            f"the events of replica {reader!r} name its events up to sequence {sequence}: "
            f"they were acknowledged and are lost (the log was damaged, deleted or cut), and "
            f"the events that follow them can never be delivered in causal order. Restore "
            f"that log from a backup; a repair never cuts a replica log below what others "
            f"observed",
            path="",
            offset=0,
        )
        lost.append(DamagedLog(stream_id, replica, error, repairable=False))
    return lost


def _progress() -> Progress | None:
    """A progress bar on stderr when it is a terminal; None otherwise."""
    if not sys.stderr.isatty():
        return None
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _store_files(target: str) -> list[str]:
    """What is wrong with a file store's own files (its ``calliope.json``)."""
    if "://" in target or not os.path.isdir(target):
        return []
    meta = os.path.join(target, "calliope.json")
    if os.path.exists(meta):
        return []
    return [
        f"{meta} is missing: readers work, but every writable open refuses the store (its "
        "default replica id is unknown); restore it from a backup, or recreate it by opening "
        "once with calliope.open(path, replica_id=...) and the replica id used before"
    ]


async def scan_store(store: StorePort, target: str = "") -> Scan:
    """Read all of ``store`` (opened, at ``target``) and say what is damaged.
    When a progress bar is drawn (stderr is a terminal) the streams are
    counted first, in a listing of their own, so that it knows its length.
    Memory one page."""
    progress = _progress()
    total = await _count(_streams(store)) if progress is not None else None
    streams = 0
    shown: AbstractContextManager[object] = progress if progress is not None else nullcontext()
    events = entries = snapshots = 0
    damaged: list[DamagedLog] = []
    feed_damage: str | None = None
    bad_snapshots: list[str] = []
    with shown:
        task = None if progress is None else progress.add_task("streams", total=total)
        async for stream_id, replicated in _streams(store):
            streams += 1
            logs: list[str | None] = (
                list(await store.replicated.replicas(stream_id)) if replicated else [None]
            )
            versions: dict[str, dict[str, int]] = {}
            unread: set[str] = set()
            for replica_id in logs:
                try:
                    count, last = await _read_log(store, stream_id, replica_id)
                except CorruptJournalError as error:
                    repairable = not isinstance(error, MissingSequences)
                    damaged.append(DamagedLog(stream_id, replica_id, error, repairable))
                    if replica_id is not None:
                        unread.add(replica_id)
                    continue
                events += count
                if replica_id is not None:
                    versions[replica_id] = last
            if replicated:
                damaged.extend(lost_replica_events(stream_id, versions, frozenset(unread)))
            if progress is not None and task is not None:
                progress.advance(task)
        try:
            for prefix in (None, RESERVED_PREFIX):
                start = 0
                while True:
                    page = await store.feed.read_feed(start, prefix, limit=4096)
                    entries += len(page.entries)
                    start = page.next_entry
                    if not page.more:
                        break
        except CorruptJournalError as error:
            # (a damaged log the feed reads is named once, as that log's)
            if not any(error.path and error.path == log.error.path for log in damaged):
                feed_damage = str(error)
        async for ids in store.snapshots.ids(None):
            for snapshot_id in ids:
                snapshots += 1
                bad_snapshots.extend(await store.snapshots.check(snapshot_id))
    return Scan(
        streams=streams,
        events=events,
        feed_batches=entries,
        snapshots=snapshots,
        damaged_logs=tuple(damaged),
        feed_damage=feed_damage,
        damaged_snapshots=tuple(bad_snapshots),
        damaged_store=tuple(_store_files(target)),
    )


async def scan_target(target: str) -> Scan:
    """Open the store at ``target`` read-only, scan it, close it."""
    store = raw_store(target)
    await store.open()
    try:
        return await scan_store(store, target)
    finally:
        await store.aclose()
