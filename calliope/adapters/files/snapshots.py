"""The file adapter's snapshot port.

Each snapshot is one file ``<sequence>-<timestamp>.snap`` in the id's
directory: a header (``SNAPSHOT_HEADER``) and one frame whose
payload is the msgpack array ``[sequence, timestamp_us, type_name,
schema_version, data]``. It is written to a temporary file, fsynced,
renamed into place and the directory fsynced, so a crash leaves either the
old set of snapshots or the new one. The newest ``keep`` are kept. Loading
tries the newest first and falls back past damaged files with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct

import msgpack

from calliope.adapters.files.framing import Stop, encode_frame, parse_frames
from calliope.adapters.files.fsutil import storage_errors, write_file_atomically
from calliope.adapters.files.layout import id_digest, id_directory
from calliope.adapters.packing import pack_data
from calliope.shell.ports import SnapshotRecord

__all__ = ["FileSnapshots"]

logger = logging.getLogger("calliope.files")

SNAPSHOT_HEADER = b"CALLIOPE-SNP" + struct.pack("<I", 1)


def encode_snapshot(record: SnapshotRecord, packed_data: bytes) -> bytes:
    head: bytes = msgpack.packb(
        [record.sequence, record.timestamp_us, record.type_name, record.schema_version]
    )
    return SNAPSHOT_HEADER + encode_frame(b"\x95" + head[1:] + packed_data)


def decode_snapshot(data: bytes) -> SnapshotRecord | None:
    """The snapshot in a file's bytes, or None if the file is damaged."""
    if not data.startswith(SNAPSHOT_HEADER):
        return None
    parsed = parse_frames(data, len(SNAPSHOT_HEADER))
    if parsed.stop is not Stop.END or len(parsed.payloads) != 1:
        return None
    try:
        fields = msgpack.unpackb(parsed.payloads[0], raw=False, strict_map_key=False)
        return SnapshotRecord(*fields)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None


class FileSnapshots:
    """Implements :class:`calliope.shell.ports.SnapshotPort` in ``root/snapshots``."""

    def __init__(self, root: str, *, keep: int = 3) -> None:
        self._root = root
        self._keep = keep

    def _directory(self, snapshot_id: str) -> str:
        digest = id_digest(snapshot_id)
        return os.path.join(self._root, "snapshots", digest[:2], digest)

    async def save(self, snapshot_id: str, record: SnapshotRecord) -> None:
        payload = encode_snapshot(record, pack_data(record.data))
        with storage_errors(f"saving snapshot {snapshot_id!r}"):
            await asyncio.to_thread(self._save, snapshot_id, record, payload)

    def _save(self, snapshot_id: str, record: SnapshotRecord, payload: bytes) -> None:
        directory = id_directory(self._root, "snapshots", snapshot_id)
        name = f"{record.sequence:020d}-{record.timestamp_us:020d}.snap"
        write_file_atomically(os.path.join(directory, name), payload)
        for old in self._names(directory)[self._keep :]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, old))

    @staticmethod
    def _names(directory: str) -> list[str]:
        """Snapshot file names, newest (highest sequence, then time) first."""
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if n.endswith(".snap")), reverse=True)

    async def load(self, snapshot_id: str) -> SnapshotRecord | None:
        with storage_errors(f"loading snapshot {snapshot_id!r}"):
            return await asyncio.to_thread(self._load, snapshot_id)

    def _load(self, snapshot_id: str) -> SnapshotRecord | None:
        directory = self._directory(snapshot_id)
        for name in self._names(directory):
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:  # pruned by a concurrent save
                continue
            record = decode_snapshot(data)
            if record is not None:
                return record
            logger.warning(
                "snapshot file %s of %r is damaged; falling back to the previous snapshot",
                path,
                snapshot_id,
            )
        return None
