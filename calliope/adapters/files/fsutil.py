"""Small durable-filesystem helpers shared by the file adapter."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence

import aiofiles
import aiofiles.os

from calliope.errors import StorageError

__all__ = [
    "fsync_directory",
    "private_makedirs",
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


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


async def write_file_atomically_async(path: str, parts: Sequence[bytes]) -> None:
    """:func:`write_file_atomically` through aiofiles, the event loop free
    meanwhile: ``parts`` written one after another to a temp file, fsync,
    rename, fsync the directory. A part is written as it is (a large one
    straight from its buffer, with the GIL released), never joined."""
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    handle = await aiofiles.open(temporary, "xb", opener=_private)
    try:
        try:
            await handle.writelines(parts)
            await handle.flush()
            await asyncio.to_thread(os.fsync, handle.fileno())
        finally:
            await handle.close()
    except BaseException:
        with contextlib.suppress(OSError):
            await aiofiles.os.unlink(temporary)
        raise
    await aiofiles.os.replace(temporary, path)
    await asyncio.to_thread(fsync_directory, os.path.dirname(path))


def storage_error(action: str, error: OSError) -> StorageError:
    """The StorageError for an OSError raised while doing ``action``: what
    failed and what to check."""
    return StorageError(
        f"{action} failed: {error}; check the data directory's permissions, free space "
        f"and that nothing else changed its files"
    )


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn an OSError raised while doing ``action`` into a StorageError."""
    try:
        yield
    except OSError as error:
        raise storage_error(action, error) from error
