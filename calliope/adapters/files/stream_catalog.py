"""Listing the streams of a file store, a directory at a time.

Every stream lives in ``streams/<h2>/<h>/`` with its id in ``id`` and its
kind in ``kind`` (or known by its ``log``/``replicas`` directory). A listing
walks the 256 ``<h2>`` directories in order, reads the ids of one of them at
a time (one worker-thread hop each) and yields those matching the prefix:
memory stays at one directory's entries, whatever the number of streams.
The order is that of the ids' hashes: stable for a store, not sorted. A
directory whose ``id`` file does not hash to its name (damaged, or edited by
hand) is left out and logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

from calliope.adapters.files.fsutil import storage_errors
from calliope.adapters.files.layout import id_digest
from calliope.core.ids import MAX_ID_BYTES

__all__ = ["list_streams"]

logger = logging.getLogger("calliope.files")


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
                stream_id = handle.read(MAX_ID_BYTES + 1).decode("utf-8")
        except FileNotFoundError:
            continue  # being created
        except (OSError, UnicodeDecodeError) as error:
            logger.warning("not listing %s: its id file cannot be read (%s)", directory, error)
            continue
        if id_digest(stream_id) != name:
            logger.warning(
                "not listing %s: its id file names %r, whose directory is another; "
                "the file was changed by hand or damaged",
                directory,
                stream_id[:100],
            )
            continue
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
