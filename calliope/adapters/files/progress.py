"""Replica progress and heartbeats in files.

::

    <root>/progress/<h2>/<h>/id            the replicator key, as UTF-8
    <root>/progress/<h2>/<h>/<r>.progress  one replica's last report on the key
    <root>/progress/<h2>/<h>/type          the key's CRDT type name (a record, created once)
    <root>/heartbeats/<r>.beat             one replica's last heartbeat

``<h>`` is the SHA-256 of the key and ``<r>`` of the replica id (as in
:mod:`.layout`). Each file holds one record, ``CPRG`` + length + CRC-32 +
msgpack (bytes after it are ignored), overwritten in place from offset 0
with one ``pwrite`` by the one process that writes it (the replica's lease
holder), through a descriptor kept open (for the 64 most recently written).
Not a rename: on ext4 replacing a file by rename makes the kernel write the
new data out first, which cost as much as the journal's own write and
fsync. Records are not fsynced either.

Why that is safe: a report only ever lets others go on (count an
acknowledgement, compact). After a power loss, or read while it is being
overwritten, a record may read as the previous one, or as damaged, which
reads as no record (read twice before it is taken as damaged); either makes
the others wait longer or compact later, never lose or misapply anything.
What a replica applied is rebuilt from the operations' logs, which are
fsynced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgpack

from calliope.adapters.files.fsutil import (
    create_file_exclusively,
    private_makedirs,
    storage_error,
    storage_errors,
)
from calliope.adapters.files.layout import id_digest, id_directory
from calliope.adapters.read_only import read_only_refused
from calliope.shell.ports import HeartbeatRecord, ProgressRecord

__all__ = ["FileProgress"]

logger = logging.getLogger("calliope.files")

_R = TypeVar("_R", ProgressRecord, HeartbeatRecord)

_MAGIC = b"CPRG"
_MAX_RECORD = 1024 * 1024
_COARSE_CLOCK_NS = 100_000_000
"""File times move in coarse ticks (a few ms on Linux); a directory changed
more recently than this may change again without its time moving."""
_KEEP_OPEN = 64
"""Progress files kept open for writing (the most recently written)."""


def encode_record(fields: list[Any]) -> bytes:
    payload: bytes = msgpack.packb(fields)
    return _MAGIC + struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def decode_record(data: bytes) -> list[Any] | None:
    """The fields of the record at the start of ``data``, or None when it is
    not an intact one."""
    if len(data) < 12 or not data.startswith(_MAGIC):
        return None
    size, crc = struct.unpack_from("<II", data, 4)
    payload = data[12 : 12 + size]
    if len(payload) != size or zlib.crc32(payload) != crc:
        return None
    try:
        fields = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return fields if type(fields) is list and len(fields) == 3 else None


def _progress_of(fields: list[Any]) -> ProgressRecord | None:
    replica, delivered, timestamp_us = fields
    if (
        type(replica) is not str
        or type(delivered) is not dict
        or type(timestamp_us) is not int
        or not all(
            type(name) is str and type(count) is int and count > 0
            for name, count in delivered.items()
        )
    ):
        return None
    return ProgressRecord(replica, delivered, timestamp_us)


def _heartbeat_of(fields: list[Any]) -> HeartbeatRecord | None:
    replica, timestamp_us, running = fields
    if type(replica) is not str or type(timestamp_us) is not int or type(running) is not bool:
        return None
    return HeartbeatRecord(replica, timestamp_us, running)


def _read_all(directory: str, suffix: str) -> list[tuple[str, list[Any]]]:
    """(path, fields) of every intact record file in ``directory``."""
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(suffix))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(directory, name)
        fields = None
        for _ in range(2):  # a read racing the overwrite: read again
            try:
                with open(path, "rb") as handle:
                    data = handle.read(_MAX_RECORD)
            except FileNotFoundError:  # removed meanwhile
                break
            fields = decode_record(data)
            if fields is not None:
                break
        if fields is None:
            logger.warning("ignoring damaged replica progress file %s", path)
            continue
        found.append((path, fields))
    return found


class FileProgress:
    """Implements :class:`calliope.shell.ports.ProgressPort` under ``root``.

    Reading the reports of a key, or the heartbeats, is O(replicas) small
    files; writing one is one small file. Both run on the event loop: with
    no fsync they take tens of microseconds, while a hop to a worker thread
    can wait behind the journal's fsyncs for a hundred milliseconds.
    """

    def __init__(self, root: str, *, read_only: bool = False) -> None:
        self._root = root
        self._read_only = read_only
        self._directories: dict[str, str] = {}
        self._paths: dict[tuple[str, str], str] = {}  # (key, replica) -> report file
        self._descriptors: dict[str, int] = {}  # path -> open for writing

    def _overwrite(self, path: str, data: bytes) -> None:
        """Write ``data`` at offset 0 of ``path`` (created 0600 if missing)."""
        fd = self._descriptors.pop(path, None)  # re-inserted: most recently used last
        if fd is None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            while len(self._descriptors) >= _KEEP_OPEN:
                oldest = next(iter(self._descriptors))
                with contextlib.suppress(OSError):
                    os.close(self._descriptors.pop(oldest))
        self._descriptors[path] = fd
        os.pwrite(fd, data, 0)

    def close(self) -> None:
        """Close the descriptors kept open for writing."""
        descriptors, self._descriptors = self._descriptors, {}
        for fd in descriptors.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def _writable(self, what: str) -> None:
        if self._read_only:
            raise read_only_refused(self._root, what)

    def _key_path(self, key: str, *names: str) -> str:
        """``progress/<h2>/<h>`` of ``key`` (created by :meth:`_key_directory`), or a file in it."""
        digest = id_digest(key)
        return os.path.join(self._root, "progress", digest[:2], digest, *names)

    def _records(
        self, directory: str, suffix: str, parse: Callable[[list[Any]], _R | None], what: str
    ) -> list[_R]:
        """The intact records of ``directory``'s ``*suffix`` files, each
        written by the replica its name hashes (others logged and left out),
        sorted. O(files)."""
        with storage_errors(f"reading {what}"):
            found = _read_all(directory, suffix)
        records = []
        for path, fields in found:
            record = parse(fields)
            if record is None or f"{id_digest(record.replica_id)}{suffix}" != os.path.basename(
                path
            ):
                logger.warning("ignoring a file of the wrong shape among the %s: %s", what, path)
                continue
            records.append(record)
        return sorted(records)

    def _key_directory(self, key: str) -> str:
        directory = self._directories.get(key)
        if directory is None:
            directory = id_directory(self._root, "progress", key)
            self._directories[key] = directory
        return directory

    async def report(
        self, key: str, replica_id: str, delivered: Mapping[str, int], *, timestamp_us: int
    ) -> None:
        self._writable(f"recording progress on key {key!r}")
        data = encode_record([replica_id, dict(delivered), timestamp_us])
        try:  # (the hot path of every replicator round: no context manager)
            path = self._paths.get((key, replica_id))
            if path is None:
                directory = self._key_directory(key)
                path = os.path.join(directory, f"{id_digest(replica_id)}.progress")
                if len(self._paths) >= 4096:
                    self._paths.clear()
                self._paths[(key, replica_id)] = path
            self._overwrite(path, data)
        except OSError as error:
            raise storage_error(f"recording replica progress on key {key!r}", error) from error

    async def reports(self, key: str) -> list[ProgressRecord]:
        return self._records(
            self._key_path(key), ".progress", _progress_of, f"progress reports on key {key!r}"
        )

    async def reporters_token(self, key: str) -> object:
        try:  # a new report file changes the directory; an overwrite does not
            status = os.stat(self._key_path(key))
        except FileNotFoundError:
            return None
        if time.time_ns() - status.st_mtime_ns < _COARSE_CLOCK_NS:
            # Changed so recently that a second new file in the same clock
            # tick would leave the time as it is: trust nothing yet.
            return object()
        return (status.st_ino, status.st_mtime_ns)

    async def claim_type(self, key: str, type_name: str) -> str:
        path = self._key_path(key, "type")

        def claim() -> str:
            if not self._read_only and not os.path.exists(path):
                create_file_exclusively(
                    os.path.join(self._key_directory(key), "type"),
                    encode_record([type_name, 0, 0]),
                )
            try:
                with open(path, "rb") as handle:
                    fields = decode_record(handle.read(_MAX_RECORD))
            except FileNotFoundError:  # read-only, and nobody claimed it
                return type_name
            if fields is None or type(fields[0]) is not str:
                # Damaged: no evidence either way. The key's stored operations
                # still name their CRDT type, and a wrong one is refused there.
                logger.warning("ignoring the damaged CRDT type file %s", path)
                return type_name
            held: str = fields[0]
            return held

        with storage_errors(f"recording the CRDT type of replicator key {key!r}"):
            return await asyncio.to_thread(claim)

    async def beat(self, replica_id: str, *, timestamp_us: int, running: bool = True) -> None:
        self._writable("a heartbeat")
        data = encode_record([replica_id, timestamp_us, running])
        directory = os.path.join(self._root, "heartbeats")
        with storage_errors(f"recording the heartbeat of replica {replica_id!r}"):
            if not os.path.isdir(directory):
                private_makedirs(directory)
            self._overwrite(os.path.join(directory, f"{id_digest(replica_id)}.beat"), data)

    async def heartbeats(self) -> list[HeartbeatRecord]:
        return self._records(
            os.path.join(self._root, "heartbeats"), ".beat", _heartbeat_of, "replica heartbeats"
        )
