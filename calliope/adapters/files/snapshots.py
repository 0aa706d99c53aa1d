"""The file adapter's snapshot port.

Each snapshot is one file ``<sequence>-<timestamp>.snap`` in the id's
directory: a header (``SNAPSHOT_HEADER``) and one frame whose
payload is the msgpack array ``[sequence, timestamp_us, type_name,
schema_version, data]``. It is written to a temporary file, fsynced,
renamed into place and the directory fsynced, in one worker-thread hop
through the store's :class:`~calliope.adapters.files.disk.Disk`, so a
crash leaves either the old set of snapshots or the new one (and perhaps a
``.tmp`` file, which is never read). A failed write or sync (a full disk,
an I/O error) raises StorageError and leaves the new snapshot out of view:
loading returns the previous one, and a later save may succeed. The newest
``keep`` are kept. Loading (through aiofiles) tries the newest first and
falls back past damaged files with a warning.

``load`` returns the newest intact snapshot, or None if there is none,
whatever the files hold (flipped, cut, garbage, or an intact frame that
does not hold a snapshot); it raises only StorageError, when the storage
itself fails. Decoding the record's data into the state's type is the
caller's (EventDecodingError if it does not fit).

A large snapshot does not hold the event loop: packing and framing it run
in a worker thread, a large ``bytes`` value is written from its own buffer
(never copied into one), and checking and unpacking a file run in a worker
thread by :func:`calliope.adapters.packing.unpack_data`, which never holds
the GIL for long. A small one is packed on the loop, and unpacked on it if
its file is at most 64 KiB (else in one worker-thread hop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import AsyncIterator

import aiofiles.os
import msgpack

from calliope.adapters.files.batch_format import MAX_TIMESTAMP_US, MIN_TIMESTAMP_US
from calliope.adapters.files.disk import OS_DISK, Disk
from calliope.adapters.files.framing import (
    FRAME_HEADER,
    MAX_PAYLOAD,
    frame_header,
    frame_length,
    intact_frame_at,
)
from calliope.adapters.files.fsutil import (
    read_file_parts,
    storage_errors,
    write_file_atomically_async,
)
from calliope.adapters.files.layout import id_digest, id_directory
from calliope.adapters.packing import is_large, pack_chunks, pack_data, unpack_data
from calliope.errors import EventEncodingError
from calliope.shell.ports import SnapshotRecord

__all__ = ["FileSnapshots"]

logger = logging.getLogger("calliope.files")

SNAPSHOT_HEADER = b"CALLIOPE-SNP" + struct.pack("<I", 1)


def encode_snapshot(record: SnapshotRecord, *, large: bool) -> list[bytes]:
    """A snapshot file's bytes, as parts to write one after another. For
    ``large`` data, in a worker thread: its large values are not copied."""
    head: bytes = msgpack.packb(
        [record.sequence, record.timestamp_us, record.type_name, record.schema_version]
    )
    data = pack_chunks(record.data) if large else [pack_data(record.data)]
    payload = [b"\x95" + head[1:], *data]
    size = sum(map(len, payload))
    if size > MAX_PAYLOAD:  # its frame would not read back
        raise EventEncodingError(
            f"a {record.type_name!r} snapshot packs to {size:,} bytes, over the file store's "
            f"limit of {MAX_PAYLOAD:,}; keep large data out of the state (a file of its own, "
            f"referred to by name)"
        )
    return [SNAPSHOT_HEADER + frame_header(payload), *payload]


def decode_snapshot(data: bytes) -> SnapshotRecord | None:
    """The snapshot in a file's bytes, or None if the file is damaged: not
    one intact frame after the header, or a payload that is not the array
    above with fields of the right types. Whatever the bytes, nothing else
    comes out (never an exception), and msgpack's length limits keep a
    damaged length from allocating more than the file's size. O(len(data)).
    """
    start = len(SNAPSHOT_HEADER) + FRAME_HEADER
    if (
        not data.startswith(SNAPSHOT_HEADER)
        or frame_length(data[len(SNAPSHOT_HEADER) : start]) != len(data) - start
        or not intact_frame_at(data, len(SNAPSHOT_HEADER))
    ):
        return None
    try:
        fields = unpack_data(data, start)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if type(fields) is not list or len(fields) != 5:
        return None
    sequence, timestamp_us, type_name, schema_version, _ = fields
    if (
        type(sequence) is not int
        or sequence < 0
        or type(timestamp_us) is not int
        or not MIN_TIMESTAMP_US <= timestamp_us <= MAX_TIMESTAMP_US
        or type(type_name) is not str
        or type(schema_version) is not int
        or schema_version < 1
    ):
        return None
    return SnapshotRecord(*fields)


_DECODE_ON_LOOP = 64 * 1024
"""Files up to this size are decoded on the event loop (well under 1 ms for
most; ~2 ms for 64 KiB of tiny values), larger ones in a worker thread."""


def _decode_parts(parts: list[bytes]) -> SnapshotRecord | None:
    """:func:`decode_snapshot` of ``parts`` joined (with the GIL released),
    emptying ``parts`` to free them early. For a worker thread."""
    data = b"".join(parts)
    parts.clear()
    return decode_snapshot(data)


def _snapshot_names(names: list[str]) -> list[str]:
    """The snapshot files among a directory's entries (not ``id``, nor the
    ``.tmp`` files a crash may leave)."""
    return [name for name in names if name.endswith(".snap")]


class FileSnapshots:
    """Implements :class:`calliope.shell.ports.SnapshotPort` in ``root/snapshots``."""

    def __init__(self, root: str, *, keep: int = 3, disk: Disk = OS_DISK) -> None:
        self._root = root
        self._keep = keep
        self._disk = disk

    def _directory(self, snapshot_id: str) -> str:
        digest = id_digest(snapshot_id)
        return os.path.join(self._root, "snapshots", digest[:2], digest)

    async def save(self, snapshot_id: str, record: SnapshotRecord) -> None:
        if is_large(record.data):
            parts = await asyncio.to_thread(encode_snapshot, record, large=True)
        else:
            parts = encode_snapshot(record, large=False)
        name = f"{record.sequence:020d}-{record.timestamp_us:020d}.snap"
        with storage_errors(f"saving snapshot {snapshot_id!r}"):
            directory = await asyncio.to_thread(id_directory, self._root, "snapshots", snapshot_id)
            await write_file_atomically_async(os.path.join(directory, name), parts, self._disk)
            await asyncio.to_thread(self._prune, directory)

    def _prune(self, directory: str) -> None:
        """Delete all but the newest ``keep`` snapshot files."""
        for old in sorted(_snapshot_names(os.listdir(directory)), reverse=True)[self._keep :]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, old))

    @staticmethod
    async def _names(directory: str) -> list[str]:
        """Snapshot file names, newest (highest sequence, then time) first."""
        try:
            names = await aiofiles.os.listdir(directory)
        except FileNotFoundError:
            return []
        return sorted(_snapshot_names(names), reverse=True)

    async def _copies(self, snapshot_id: str) -> AsyncIterator[tuple[str, list[bytes]]]:
        """Each kept snapshot file of the id, newest first: its path and bytes."""
        directory = self._directory(snapshot_id)
        for name in await self._names(directory):
            path = os.path.join(directory, name)
            try:
                parts = await read_file_parts(path)
            except FileNotFoundError:  # pruned by a concurrent save
                continue
            yield path, parts

    async def load(self, snapshot_id: str) -> SnapshotRecord | None:
        with storage_errors(f"loading snapshot {snapshot_id!r}"):
            async for path, parts in self._copies(snapshot_id):
                if sum(map(len, parts)) <= _DECODE_ON_LOOP:
                    record = _decode_parts(parts)
                else:
                    record = await asyncio.to_thread(_decode_parts, parts)
                if record is not None:
                    return record
                logger.warning(
                    "snapshot file %s of %r is damaged; falling back to the previous snapshot",
                    path,
                    snapshot_id,
                )
        return None

    async def ids(self, prefix: str | None) -> AsyncIterator[list[str]]:
        """One page per ``snapshots/<h2>`` directory (1/256 of the ids)."""
        top = os.path.join(self._root, "snapshots")
        with storage_errors("listing snapshots"):
            try:
                shards = sorted(await aiofiles.os.listdir(top))
            except FileNotFoundError:
                return
            for shard in shards:
                page = await asyncio.to_thread(_ids_in, os.path.join(top, shard), prefix)
                if page:
                    yield page

    async def check(self, snapshot_id: str) -> list[str]:
        damaged = []
        with storage_errors(f"checking snapshot {snapshot_id!r}"):
            async for path, parts in self._copies(snapshot_id):
                if await asyncio.to_thread(_decode_parts, parts) is None:
                    damaged.append(
                        f"{path}: snapshot of {snapshot_id!r} is damaged (checksum, length or "
                        "format); loads pass over it, to an older intact snapshot or (if none) "
                        "to no snapshot, so the state is folded from the events again"
                    )
        return damaged


def _ids_in(shard: str, prefix: str | None) -> list[str]:
    """The snapshot ids under one ``snapshots/<h2>`` directory that start
    with ``prefix`` and hold at least one snapshot file."""
    found = []
    try:
        directories = os.listdir(shard)
    except (FileNotFoundError, NotADirectoryError):
        return []
    for digest in directories:
        directory = os.path.join(shard, digest)
        try:
            with open(os.path.join(directory, "id"), "rb") as handle:
                snapshot_id = handle.read().decode("utf-8", errors="replace")
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if (prefix is None or snapshot_id.startswith(prefix)) and _snapshot_names(names):
            found.append(snapshot_id)
    return sorted(found)
