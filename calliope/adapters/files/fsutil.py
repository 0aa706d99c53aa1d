"""Small durable-filesystem helpers shared by the file adapter."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

from calliope.errors import StorageError

__all__ = [
    "fsync_directory",
    "private_makedirs",
    "storage_error",
    "storage_errors",
    "write_file_atomically",
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
