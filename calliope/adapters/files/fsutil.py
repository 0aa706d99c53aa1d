"""Small durable-filesystem helpers shared by the file adapter."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import uuid
from collections.abc import Iterator, Sequence

import aiofiles

from calliope.adapters.files.disk import OS_DISK, Disk, sync
from calliope.errors import StorageError

__all__ = [
    "create_file_exclusively",
    "IO_CHUNK",
    "fsync_directory",
    "private_makedirs",
    "read_file_parts",
    "storage_error",
    "storage_errors",
    "write_file_atomically",
    "write_file_atomically_async",
]


def fsync_directory(path: str, disk: Disk = OS_DISK) -> None:
    """Make a directory's entries (created or renamed files) durable
    (:class:`~calliope.adapters.files.disk.SyncFailed` if that failed)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        sync(disk.fsync, fd)
    finally:
        os.close(fd)


def private_makedirs(path: str) -> None:
    """Like ``os.makedirs(path, exist_ok=True)``, but every directory it
    creates (not only the last) is 0700, and its entry in the parent is made
    durable (so a power loss cannot drop a directory holding fsynced data)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        private_makedirs(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    if parent:
        fsync_directory(parent)


def write_file_atomically(path: str, data: bytes | Sequence[bytes], disk: Disk = OS_DISK) -> None:
    """Durably replace ``path`` with ``data`` (bytes, or parts written one
    after another, never joined, ``IO_CHUNK`` per system call): temp file,
    fsync, rename, fsync the directory, through ``disk``. If any of it
    fails (OSError), no temp file is left and the new data is not in view:
    when the directory's fsync fails after the rename, ``path`` is removed
    again (callers only write new names; a crash may still bring the file
    back, whole). O(size)."""
    directory = os.path.dirname(path)
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for view in _slices([data] if isinstance(data, bytes) else data):
            while view:
                view = view[disk.write(fd, view) :]
        sync(disk.fsync, fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    os.close(fd)
    try:
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    try:
        fsync_directory(directory, disk)
    except OSError:
        # Not durably renamed: take it back, so that a failure means "not
        # written" here too (a crash may still bring back the whole file).
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


IO_CHUNK = 1024 * 1024
"""The most the file helpers read or write in one system call. (One read
of 50 MiB into fresh memory held this VM's event loop, in another thread,
for about as long as it took, ~20 ms; reads of 1 MiB, well under 1 ms.)"""


async def write_file_atomically_async(
    path: str, parts: Sequence[bytes], disk: Disk = OS_DISK
) -> None:
    """:func:`write_file_atomically` in one worker-thread hop, the event
    loop free meanwhile. The thread owns the file until it is done: if the
    caller is cancelled, the file is still written (or not) as a whole."""
    await asyncio.to_thread(write_file_atomically, path, parts, disk)


def create_file_exclusively(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data``, whole and durable, unless it exists:
    a temporary file is written and fsynced, then linked to ``path`` (which
    fails if another process got there first), and the directory fsynced.
    True if this call created it."""
    directory = os.path.dirname(path)
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)
    fsync_directory(directory)
    return True


def _slices(parts: Sequence[bytes]) -> Iterator[memoryview]:
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), IO_CHUNK):
            yield view[start : start + IO_CHUNK]


async def read_file_parts(path: str) -> list[bytes]:
    """A file's bytes through aiofiles, read ``IO_CHUNK`` at a time."""
    parts: list[bytes] = []
    async with aiofiles.open(path, "rb") as handle:
        while True:
            part = await handle.read(IO_CHUNK)
            parts.append(part)
            if len(part) < IO_CHUNK:  # a buffered read is short only at the end
                return parts


def storage_error(action: str, error: OSError, *, consequence: str = "") -> StorageError:
    """The StorageError for an OSError raised while doing ``action``: what
    failed, its ``consequence`` if given, and what to check."""
    if error.errno in (errno.EMFILE, errno.ENFILE):
        advice = (
            "the process ran out of file descriptors; raise its limit (ulimit -n) or "
            "write to fewer streams at once"
        )
    elif error.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "the disk is full; free space and retry"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = (
            "this process lacks permission there, or the file system is read-only: check "
            "the data directory's permissions and mount, or open the store with "
            "calliope.open(path, read_only=True) to inspect a store you cannot write"
        )
    elif error.errno == errno.EIO:
        advice = (
            "the device reported an I/O error; check the disk and its kernel log (dmesg), "
            "and move the data directory to a healthy disk if it recurs"
        )
    else:
        advice = (
            "check the data directory's permissions, free space and that nothing else "
            "changed its files"
        )
    if consequence:
        return StorageError(f"{action} failed: {error}; {consequence}; {advice}")
    return StorageError(f"{action} failed: {error}; {advice}")


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn an OSError raised while doing ``action`` into a StorageError."""
    try:
        yield
    except OSError as error:
        raise storage_error(action, error) from error
