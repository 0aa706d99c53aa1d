"""Change notification for the file store: one poller per app.

Appends by this app wake its watchers at once (:meth:`FileChanges.fire`).
Appends by other processes are noticed by polling the files: however many
live queries an app runs, it keeps one record per watched stream (counted
by its watchers) and one poller task, which every ``poll_interval`` looks
at all watched streams in one worker-thread hop (per log: one directory
listing and one ``stat`` of the last segment) and wakes the watchers of the
streams that changed. The poller runs while something is watched, and the
app's close ends it. Nothing here runs on the event loop but the wake-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from calliope.adapters.files.layout import stream_directory
from calliope.adapters.notify import Signal

__all__ = ["FileChanges"]

_State = tuple[tuple[str, str, int], ...]


def _log_state(directory: str, name: str, into: list[tuple[str, str, int]]) -> None:
    """Append (log name, last segment, its size) for the log in ``directory``."""
    try:
        segments = [n for n in os.listdir(directory) if n.endswith(".seg")]
    except (FileNotFoundError, NotADirectoryError):
        return
    if not segments:
        return
    last = max(segments)
    try:
        size = os.stat(os.path.join(directory, last)).st_size
    except FileNotFoundError:
        size = -1
    into.append((name, last, size))


def stream_state(root: str, stream_id: str) -> _State:
    """Blocking: what changes when anything is appended to the stream (its
    plain log or any replica log). O(replica logs) system calls."""
    directory = stream_directory(root, stream_id)
    state: list[tuple[str, str, int]] = []
    _log_state(os.path.join(directory, "log"), "", state)
    replicas = os.path.join(directory, "replicas")
    try:
        names = sorted(os.listdir(replicas))
    except FileNotFoundError:
        names = []
    for name in names:
        _log_state(os.path.join(replicas, name), name, state)
    return tuple(state)


def _states(root: str, streams: list[str]) -> list[_State]:
    return [stream_state(root, stream) for stream in streams]


class _Watched:
    """One watched stream: its watchers' count, signal and last seen state."""

    __slots__ = ("count", "signal", "state")

    def __init__(self) -> None:
        self.count = 0
        self.signal = Signal()
        self.state: _State | None = None  # None: not looked at yet


class _FileWatcher:
    def __init__(self, watched: _Watched) -> None:
        self._signal = watched.signal
        self._seen = watched.signal.generation

    async def wait(self) -> None:
        self._seen = await self._signal.wait(self._seen, None)


class FileChanges:
    """Implements :class:`calliope.shell.ports.ChangesPort` for a directory."""

    def __init__(self, root: str, *, poll_interval: float) -> None:
        self._root = root
        self._interval = poll_interval
        self._watched: dict[str, _Watched] = {}
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    def fire(self, stream_id: str) -> None:
        """This app appended to ``stream_id``: wake its watchers now."""
        watched = self._watched.get(stream_id)
        if watched is not None:
            watched.signal.fire()

    @contextlib.asynccontextmanager
    async def watch(self, stream_id: str) -> AsyncIterator[_FileWatcher]:
        watched = self._watched.get(stream_id)
        if watched is None:
            watched = self._watched[stream_id] = _Watched()
            watched.count += 1
            # The baseline is taken before the watcher is handed out (and so
            # before its owner reads): a later append changes it.
            try:
                state = await asyncio.to_thread(stream_state, self._root, stream_id)
            except BaseException:
                self._unwatch(stream_id, watched)
                raise
            if watched.state is None:
                watched.state = state
        else:
            watched.count += 1
        if self._poller is None and not self._closed:
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            yield _FileWatcher(watched)
        finally:
            self._unwatch(stream_id, watched)
            poller = self._poller
            if not self._watched and poller is not None:  # the last watcher: stop polling
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
            while self._watched:
                await asyncio.sleep(self._interval)
                streams = list(self._watched)
                states = await asyncio.to_thread(_states, self._root, streams)
                for stream, state in zip(streams, states, strict=True):
                    watched = self._watched.get(stream)
                    if watched is None:
                        continue
                    if state != watched.state:
                        watched.state = state
                        watched.signal.fire()
        except OSError:
            # The directory became unreadable: wake everyone so readers meet
            # the error themselves, and stop polling until watched again.
            for watched in self._watched.values():
                watched.signal.fire()
        finally:
            if self._poller is asyncio.current_task():
                self._poller = None

    async def aclose(self) -> None:
        """End the poller (the app is closing)."""
        self._closed = True
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
