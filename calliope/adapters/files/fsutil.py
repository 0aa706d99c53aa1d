"""Small durable-filesystem helpers shared by the file adapter."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import uuid
from collections.abc import Iterator, Sequence

import aiofiles
import aiofiles.os

from calliope.errors import StorageError

__all__ = [
    "IO_CHUNK",
    "fsync_directory",
    "private_makedirs",
    "read_file_parts",
    "storage_error",
    "storage_errors",
    "write_file_atomically",
    "write_file_atomically_async",
]


def fsync_directory(path: str) -> None:
    """Make a directory's entries (created or renamed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
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


def write_file_atomically(path: str, data: bytes) -> None:
    """Durably replace ``path``: temp file, fsync, rename, fsync the directory."""
    directory = os.path.dirname(path)
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    os.close(fd)
    os.replace(temporary, path)
    fsync_directory(directory)


IO_CHUNK = 1024 * 1024
"""The most the async helpers read or write in one system call. (One read
of 50 MiB into fresh memory held this VM's event loop, in another thread,
for about as long as it took, ~20 ms; reads of 1 MiB, well under 1 ms.)"""


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


async def write_file_atomically_async(path: str, parts: Sequence[bytes]) -> None:
    """:func:`write_file_atomically` through aiofiles, the event loop free
    meanwhile: ``parts`` written one after another to a temp file, fsync,
    rename, fsync the directory. The parts are never joined: a large one is
    written straight from its buffer, ``IO_CHUNK`` at a time."""
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    handle = await aiofiles.open(temporary, "xb", opener=_private)
    try:
        try:
            await handle.writelines(_slices(parts))
            await handle.flush()
            await asyncio.to_thread(os.fsync, handle.fileno())
        finally:
            await handle.close()
    except BaseException:
        with contextlib.suppress(OSError):
            await aiofiles.os.unlink(temporary)
        raise
    await asyncio.to_thread(_replace_durably, temporary, path)


def _replace_durably(temporary: str, path: str) -> None:
    os.replace(temporary, path)
    fsync_directory(os.path.dirname(path))


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


def storage_error(action: str, error: OSError) -> StorageError:
    """The StorageError for an OSError raised while doing ``action``: what
    failed and what to check."""
    if error.errno in (errno.EMFILE, errno.ENFILE):
        advice = (
            "the process ran out of file descriptors; raise its limit (ulimit -n) or "
            "write to fewer streams at once"
        )
    elif error.errno == errno.ENOSPC:
        advice = "the disk is full; free space and retry"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = (
            "this process lacks permission there, or the file system is read-only: check "
            "the data directory's permissions and mount, or open the store with "
            "calliope.open(path, read_only=True) to inspect a store you cannot write"
        )
    else:
        advice = (
            "check the data directory's permissions, free space and that nothing else "
            "changed its files"
        )
    return StorageError(f"{action} failed: {error}; {advice}")


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn an OSError raised while doing ``action`` into a StorageError."""
    try:
        yield
    except OSError as error:
        raise storage_error(action, error) from error
