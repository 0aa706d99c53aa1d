"""Change notification for the file store: one poller per app.

Appends by this app wake its watchers at once (:meth:`FileChanges.fire`).
Appends by other processes are noticed by polling the files: however many
live queries an app runs, it keeps one record per watched stream (counted
by its watchers) and one poller task, which every ``poll_interval`` reads
the store's change marker (:mod:`.change_marker`, touched by every append)
and, only if it moved (or every hundredth poll), looks at all watched
streams in one worker-thread hop (per log, one ``stat`` of its last
segment; see :class:`_LogProbe`) and wakes the watchers of the streams that
changed. So an idle app costs one small read per interval, however many
streams it watches. The poller runs while something is watched, and the
app's close ends it. Nothing here runs on the event loop but the wake-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from calliope.adapters.files.batch_format import SEAL
from calliope.adapters.files.change_marker import ChangeMarker
from calliope.adapters.files.extent import Extent, read_extent
from calliope.adapters.files.layout import stream_directory
from calliope.adapters.notify import Signal, SignalWatcher

__all__ = ["FileChanges"]


class _LogProbe:
    """Notices appends to one log directory with one ``stat`` per look.

    Appends only ever grow the last segment, so its size is the signal. A
    new segment is looked for (a directory listing) only when the log was
    empty, or once the last segment ends in its seal: the writer seals a
    segment before it creates the next, so nothing is missed, and a roll
    costs one listing per look until the new segment is there.

    Readers deliver nothing past the log's committed extent (extent.py),
    which the writer records just after its fsync, so a size seen to grow
    before the extent caught up is news only once it has: while the segment
    is larger than the extent, every look also reads the extent.
    """

    __slots__ = ("committed", "directory", "last", "path", "pending", "sealed", "size")

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.last: str | None = None
        self.path = ""  # of the last segment
        self.size = -1
        self.sealed = False
        self.committed: Extent | None = None
        self.pending = False  # the segment held more than the extent when last seen

    def changed(self) -> bool:
        """Blocking: whether the log changed since the last look."""
        moved = False
        if self.last is None or self.sealed:
            found = self._last_segment()
            if found != self.last:
                self.last, self.size, self.sealed, moved = found, -1, False, True
                if found is not None:
                    self.path = os.path.join(self.directory, found)
            if found is None:
                return moved
        path = self.path
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            self.last, self.size, self.sealed = None, -1, False
            return True
        if size == self.size and not self.pending:
            return moved
        grown = size != self.size
        self.size = size
        if grown:
            self.sealed = _ends_in_seal(path, size)
        extent = read_extent(self.directory)
        stem = (self.last or "")[: -len(".seg")]
        segment = int(stem) if stem.isdigit() else 0
        self.pending = (
            extent is not None
            and not self.sealed
            and (extent.segment < segment or (extent.segment == segment and extent.end < size))
        )
        if extent != self.committed:
            self.committed = extent
            return True
        return moved or (grown and extent is None)  # a log without an extent: as before

    def _last_segment(self) -> str | None:
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(".seg")]
        except (FileNotFoundError, NotADirectoryError):
            return None
        return max(names, default=None)


def _ends_in_seal(path: str, size: int) -> bool:
    if size < len(SEAL):
        return False
    try:
        with open(path, "rb") as handle:
            handle.seek(size - len(SEAL))
            return handle.read(len(SEAL)) == SEAL
    except FileNotFoundError:
        return False


class _StreamProbe:
    """Notices appends to one stream: its plain log and every replica log
    (a new replica log adds a subdirectory, so the ``replicas`` directory's
    link count changes). O(replica logs) ``stat`` calls per look."""

    __slots__ = (
        "directory",
        "has_log",
        "has_replicas",
        "links",
        "log",
        "looks",
        "replicas",
        "replicas_directory",
        "replicas_links",
    )

    def __init__(self, root: str, stream_id: str) -> None:
        self.directory = stream_directory(root, stream_id)
        self.links = -1  # the stream directory's: it changes when log/ or replicas/ appear
        self.looks = 0
        self.has_log = self.has_replicas = False
        self.log = _LogProbe(os.path.join(self.directory, "log"))
        self.replicas_directory = os.path.join(self.directory, "replicas")
        self.replicas_links = -1
        self.replicas: dict[str, _LogProbe] = {}

    def changed(self) -> bool:
        """Blocking: whether the stream changed since the last look."""
        changed = False
        self.looks += 1
        # Once the stream has its logs, their appearance is no news: look for
        # a new kind of log (a plain one, or replica logs) only now and then.
        if (self.has_log and self.has_replicas) or (
            (self.has_log or self.has_replicas) and self.looks % _RARELY
        ):
            links = self.links
        else:
            links = _links(self.directory)
        if links != self.links:
            self.links, changed = links, True
            names = os.listdir(self.directory) if links >= 0 else []
            self.has_log, self.has_replicas = "log" in names, "replicas" in names
        if self.has_log:
            changed = self.log.changed() or changed
        if not self.has_replicas:
            return changed
        links = _links(self.replicas_directory)
        if links != self.replicas_links:
            self.replicas_links = links
            changed = True
            names = os.listdir(self.replicas_directory) if links >= 0 else []
            for name in names:
                if name not in self.replicas:
                    self.replicas[name] = _LogProbe(os.path.join(self.replicas_directory, name))
        for probe in self.replicas.values():
            changed = probe.changed() or changed
        return changed


_RARELY = 10  # looks between checks for a new kind of log in a stream that has one

_FULL_LOOK_EVERY = 100
"""Polls with the marker unchanged before the streams are looked at anyway."""


def _links(directory: str) -> int:
    """A directory's link count (2 + its subdirectories), -1 if absent."""
    try:
        return os.stat(directory).st_nlink
    except FileNotFoundError:
        return -1


def _look(probes: list[_StreamProbe]) -> list[bool]:
    return [probe.changed() for probe in probes]


class _Watched:
    """One watched stream: its watchers' count, signal and last seen state."""

    __slots__ = ("count", "probe", "signal")

    def __init__(self, probe: _StreamProbe) -> None:
        self.count = 0
        self.signal = Signal()
        self.probe = probe


class FileChanges:
    """Implements :class:`calliope.shell.ports.ChangesPort` for a directory."""

    def __init__(self, root: str, *, poll_interval: float) -> None:
        self._root = root
        self._interval = poll_interval
        self._marker = ChangeMarker(root)
        self._seen_marker: bytes | None = None
        self._quiet_polls = 0
        self._watched: dict[str, _Watched] = {}
        self._feed = Signal()  # any append: for the feed's watchers
        self._feed_watchers = 0
        self._poller: asyncio.Task[None] | None = None
        self._looking = asyncio.Lock()
        self._closed = False

    def fire(self, stream_id: str, writer: str | None = None) -> None:
        """This app appended to ``stream_id`` (as ``writer``): wake its
        watchers now (but those ignoring that writer)."""
        self._marker.touch()  # other processes' pollers: something moved
        self._feed.fire(writer)
        watched = self._watched.get(stream_id)
        if watched is not None:
            watched.signal.fire(writer)

    @contextlib.asynccontextmanager
    async def watch(
        self, stream_id: str, *, ignoring: str | None = None
    ) -> AsyncIterator[SignalWatcher]:
        watched = self._watched.get(stream_id)
        if watched is None:
            watched = self._watched[stream_id] = _Watched(_StreamProbe(self._root, stream_id))
            watched.count += 1
            # The baseline is taken before the watcher is handed out (and so
            # before its owner reads): a later append changes it.
            try:
                async with self._looking:
                    await asyncio.to_thread(watched.probe.changed)
            except BaseException:
                self._unwatch(stream_id, watched)
                raise
        else:
            watched.count += 1
        if self._poller is None and not self._closed:
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            yield SignalWatcher(watched.signal, ignoring)
        finally:
            self._unwatch(stream_id, watched)
            await self._stop_if_unwatched()  # the last watcher: stop polling

    @contextlib.asynccontextmanager
    async def watch_all(self) -> AsyncIterator[SignalWatcher]:
        """A watcher woken by any append: this app's at once, other
        processes' when the poller sees the change marker move."""
        self._feed_watchers += 1
        if self._poller is None and not self._closed:
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            yield SignalWatcher(self._feed, None)
        finally:
            self._feed_watchers -= 1
            await self._stop_if_unwatched()

    async def _stop_if_unwatched(self) -> None:
        poller = self._poller
        if not self._watched and not self._feed_watchers and poller is not None:
            self._poller = None
            poller.cancel()
            await asyncio.wait([poller])

    def _unwatch(self, stream_id: str, watched: _Watched) -> None:
        watched.count -= 1
        if not watched.count and self._watched.get(stream_id) is watched:
            del self._watched[stream_id]

    async def _poll(self) -> None:
        """Until nothing is watched: look at every watched stream's files in
        one worker-thread hop per interval; wake the streams that changed."""
        try:
            while self._watched or self._feed_watchers:
                await asyncio.sleep(self._interval)
                # The marker is read here, on the loop (one pread of 16 bytes):
                # an idle poll costs no worker-thread hop.
                marker = self._marker.read()
                moved = marker is None or marker != self._seen_marker
                full = moved or self._quiet_polls >= _FULL_LOOK_EVERY
                if full and self._feed_watchers:
                    # (the full look also wakes a feed stopped before a dead
                    # writer's entry: its read settles that log)
                    self._feed.fire()
                if not full:
                    self._quiet_polls += 1
                    continue
                self._seen_marker, self._quiet_polls = marker, 0
                watched = list(self._watched.values())
                if not watched:
                    continue
                async with self._looking:  # a probe is used by one thread at a time
                    changed = await asyncio.to_thread(_look, [w.probe for w in watched])
                for entry, moved in zip(watched, changed, strict=True):
                    if moved:
                        entry.signal.fire()
        except OSError:
            # The directory became unreadable: wake everyone so readers meet
            # the error themselves, and stop polling until watched again.
            for entry in self._watched.values():
                entry.signal.fire()
            self._feed.fire()
        finally:
            if self._poller is asyncio.current_task():
                self._poller = None

    async def aclose(self) -> None:
        """End the poller (the app is closing)."""
        self._closed = True
        self._marker.close()
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
