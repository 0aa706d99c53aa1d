"""Listing the streams of a file store, a directory at a time.

Every stream lives in ``streams/<h2>/<h>/`` with its id in ``id`` and its
kind in ``kind`` (or known by its ``log``/``replicas`` directory). A listing
walks the 256 ``<h2>`` directories in order, reads the ids of one of them at
a time (one worker-thread hop each) and yields those matching the prefix:
memory stays at one directory's entries, whatever the number of streams.
The order is that of the ids' hashes: stable for a store, not sorted.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from calliope.adapters.files.fsutil import storage_errors

__all__ = ["list_streams"]


def _kind_of(directory: str) -> bool | None:
    """True for a replicated stream, False for a plain one, None if unknown."""
    try:
        with open(os.path.join(directory, "kind"), "rb") as handle:
            kind = handle.read(16)
    except FileNotFoundError:
        kind = b""
    if kind in (b"plain", b"replicated"):
        return kind == b"replicated"
    if os.path.isdir(os.path.join(directory, "replicas")):
        return True
    if os.path.isdir(os.path.join(directory, "log")):
        return False
    return None


def _page(parent: str, prefix: str | None) -> list[tuple[str, bool]]:
    """(id, replicated) of the streams in one ``<h2>`` directory."""
    try:
        names = sorted(os.listdir(parent))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        directory = os.path.join(parent, name)
        try:
            with open(os.path.join(directory, "id"), "rb") as handle:
                stream_id = handle.read().decode("utf-8")
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            continue  # being created, or not a stream directory
        if prefix is not None and not stream_id.startswith(prefix):
            continue
        replicated = _kind_of(directory)
        if replicated is not None:
            found.append((stream_id, replicated))
    return found


async def list_streams(root: str, prefix: str | None) -> AsyncIterator[list[tuple[str, bool]]]:
    """Pages of (stream id, replicated) of every stream under ``root`` whose
    id starts with ``prefix`` (all for None). O(streams) in all, O(one
    directory's entries) in memory."""
    streams = os.path.join(root, "streams")
    for first in range(256):
        parent = os.path.join(streams, f"{first:02x}")
        with storage_errors("listing the store's streams"):
            page = await asyncio.to_thread(_page, parent, prefix)
        if page:
            yield page
