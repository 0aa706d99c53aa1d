"""The OS calls the file adapter's writers make, as one replaceable value.

The segment log writer (appending frames, sealing and creating segments,
extending the index) and the snapshot writer write and sync files only
through a :class:`Disk`: a frozen value holding ``os.pwrite``,
``os.pwritev``, ``os.write``, ``os.fdatasync``, ``os.fsync`` and
``os.ftruncate`` by default (``OS_DISK``). A store takes one
(``FileStore(..., disk=...)``) and hands it down to every writer, so a test
injects faults (``ENOSPC``, ``EIO``) by passing a ``Disk`` whose functions
raise, with no global state.

A failed fsync is not like a failed write. The kernel may have dropped the
dirty pages it could not write back, and reports the error once: retrying
the fsync would then succeed without the data being on disk (the
PostgreSQL "fsyncgate" finding). :func:`sync` marks that failure as
:class:`SyncFailed`, so that a writer can stop trusting its file (the
segment log refuses writes until the store is reopened) instead of
retrying into a false success. Each log's refusal is kept in the store's
:data:`FailedLogs`, not in the writer, so that closing an idle writer
(the store's handle cache does) does not lift it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from typing import TypeAlias

import attrs

__all__ = ["OS_DISK", "Disk", "FailedLogs", "SyncFailed", "sync"]

Buffer: TypeAlias = bytes | memoryview


@attrs.frozen
class Disk:
    """The writers' OS calls, each with the signature of its ``os``
    namesake. Replace some with ``attrs.evolve(OS_DISK, fdatasync=...)``."""

    pwrite: Callable[[int, Buffer, int], int] = os.pwrite
    pwritev: Callable[[int, Sequence[Buffer], int], int] = os.pwritev
    write: Callable[[int, Buffer], int] = os.write
    fdatasync: Callable[[int], None] = os.fdatasync
    fsync: Callable[[int], None] = os.fsync
    ftruncate: Callable[[int, int], None] = os.ftruncate


OS_DISK = Disk()
"""The real calls: the default of every writer."""


class SyncFailed(OSError):
    """An fsync or fdatasync failed (same ``errno``): what was written to
    the file since its last good sync may not be on disk, and a later sync
    of it may report success regardless. The file adapter never retries
    one; it reports a StorageError."""


def sync(call: Callable[[int], None], fd: int) -> None:
    """``call(fd)`` (``disk.fsync`` or ``disk.fdatasync``); its OSError
    raised as :class:`SyncFailed`."""
    try:
        call(fd)
    except SyncFailed:
        raise
    except OSError as error:
        code = errno.EIO if error.errno is None else error.errno
        raise SyncFailed(code, error.strerror or os.strerror(code)) from error


FailedLogs: TypeAlias = dict[str, str]
"""One store's segment logs whose sync failed, by directory, each with the
reason its writer gives when it refuses to write. Empty until a sync fails;
a reopened store starts with a new one."""
