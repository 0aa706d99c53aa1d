"""The store's change marker: one small file every append touches.

``<root>/changes`` holds 16 bytes that every writer overwrites after each
append it made visible (a random number fixed per process, and a counter):
any append by any process changes them. A poller reads them first and looks
at its watched streams only when they moved, so an idle app costs one
``pread`` per poll interval however many streams it watches. Nothing relies
on the marker alone: the poller still looks at every watched stream now and
then (a reader settling a dead writer's tail publishes events without
touching the marker), so a missed touch only delays a wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import struct

__all__ = ["ChangeMarker"]

_NAME = "changes"
_SIZE = 16


class ChangeMarker:
    """Touch and read ``<root>/changes``, on the event loop."""

    def __init__(self, root: str) -> None:
        self._path = os.path.join(root, _NAME)
        self._nonce = secrets.randbits(64)
        self._count = 0
        self._fd: int | None = None
        self._reader: int | None = None
        self._scheduled = False

    def touch(self) -> None:
        """Record that this process made an append visible: once per turn of
        the event loop, however many appends a group commit answered (the
        write follows them, so it follows their publication). Best effort: a
        failure only delays other processes' wake-ups until their next full
        look."""
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._write)

    def _write(self) -> None:
        if not self._scheduled:  # written by close() already
            return
        self._scheduled = False
        self._count += 1
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.pwrite(self._fd, struct.pack("<QQ", self._nonce, self._count), 0)
        except OSError:
            self.close()

    def read(self) -> bytes | None:
        """The marker's bytes now (None if there is no marker file yet).
        One ``pread`` through a descriptor kept open: a few microseconds."""
        try:
            if self._reader is None:
                self._reader = os.open(self._path, os.O_RDONLY)
            return os.pread(self._reader, _SIZE, 0)
        except OSError:
            self._close_reader()
            return None

    def _close_reader(self) -> None:
        fd, self._reader = self._reader, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        if self._scheduled:
            self._write()
        self._close_reader()
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
