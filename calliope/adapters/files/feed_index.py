"""The file store's feed index: every batch of every log, numbered in the
order batches become visible.

``<root>/feed/index`` holds fixed 64-byte entries, entry ``n`` at byte
``64 * n``::

    stream    32 bytes  SHA-256 of the stream id (its directory's name)
    replica   12 bytes  first 12 bytes of the replica log's directory name
                        (the SHA-256 of the replica id); zeros: the plain log
    first     u64       the write's first sequence in that log
    count     u32       its events (every frame of the write)
    flags     u32       1: a replica log; 2: void (recovery found no batch)
    crc       u32       CRC-32 of the 60 bytes before it

How the feed never skips nor repeats an event, a late committer included:

- A writer takes its entry *under its log's lock, before it writes*: one
  ``O_APPEND`` write of 64 bytes, which the kernel appends whole, so the
  entry's number is where it landed. Every frame of the write carries that
  number (batch_format.py). The frames become visible only after their
  fsync (extent.py). So an entry is numbered before its batch can be read:
  a replica that read a batch and then writes gets a later number
  (causality), and a log's writes are numbered in log order.
- A reader takes entries in number order. It delivers an entry's batch once
  it is committed and carries the entry's number. A batch not committed yet
  whose log lock is held is a writer at work (a slow one, perhaps with a
  lower number than a fast one that finished): the reader stops before it
  and comes back, never skipping it. If the lock is free, a dead writer's
  intact frames are committed (readers settle, reader.py) and delivered;
  otherwise the write never completed and the entry is passed over. A later
  write that reuses those sequences carries its own number, so a stale
  entry is never taken for it.
- Resuming after a position reads the entries after it: each event once.

Writers do not fsync the index (a second fsync per persist would halve the
rate). The frames hold the truth: after a power loss or OS crash (a new boot
id) the first open re-creates, at their numbers, the entries that the last
sync of the index may not hold, from the frames of every log written since
(O(logs + data written since that sync)); closing a store syncs the index,
so after a clean shutdown this costs one read. Batches written by a
Calliope older than the feed carry no number and are not in the feed.

The same restore rebuilds a lost index whole, at the same numbers, so that
saved feed positions stay valid: a writable open that finds no sync record
(``feed/synced`` deleted), or an index holding fewer entries than the
record says were synced (it was moved aside, deleted or cut), re-creates
every entry from 0 (or from where the file ends) from the frames. That
costs O(size of the logs), once, at that open; a new store has no logs to
read. A read-only open cannot rebuild: its reads raise CorruptJournalError
saying so. A damaged entry (its checksum fails) is an error to readers,
whose message says to move the file aside and open the store writable.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import NamedTuple

from calliope.adapters.files.fsutil import private_makedirs, write_file_atomically
from calliope.errors import CorruptJournalError, StorageError

__all__ = [
    "ENTRY_SIZE",
    "VOID_ENTRY",
    "FeedIndex",
    "IndexEntry",
    "log_digests",
    "pack_entry",
    "reserver",
]

logger = logging.getLogger("calliope.files")

_ENTRY = struct.Struct("<32s12sQIII")
ENTRY_SIZE = _ENTRY.size  # 64
_CRC_SPAN = ENTRY_SIZE - 4
_REPLICA = 1
_VOID = 2
_NO_REPLICA = bytes(12)
_RETRIES = 200  # an entry read while its writer copies it in fails its check: look again
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_RESTORING = "restoring"  # in feed/synced instead of a boot id: a restore is under way
_REBUILD = (
    "With no app running, move the file aside (e.g. to feed/index.damaged) and open the "
    "store writable (not read_only): the index is rebuilt from the logs' frames, every "
    "event at the position it had (this reads every log once)"
)


class IndexEntry(NamedTuple):
    """One entry: which log (``replica`` None: the plain log) and which
    sequences; ``void`` if recovery found no batch for it."""

    number: int
    stream: bytes
    replica: bytes | None
    first_sequence: int
    events: int
    void: bool


def log_digests(directory: str) -> tuple[bytes, bytes | None]:
    """The stream digest and replica prefix an entry names for the log in
    ``directory`` (``streams/<h2>/<h>/log`` or ``.../replicas/<rh>``)."""
    parent, name = os.path.split(directory)
    if name == "log":
        return bytes.fromhex(os.path.basename(parent)), None
    stream_directory = os.path.dirname(parent)
    return bytes.fromhex(os.path.basename(stream_directory)), bytes.fromhex(name)[:12]


def reserver(index: FeedIndex | None, directory: str) -> Callable[[int, int], int] | None:
    """What the writer of the log in ``directory`` calls to take a write's
    entry (segment_writer.Reserve); None without an index to write."""
    if index is None or index.read_only:
        return None
    stream, replica = log_digests(directory)

    def reserve(first: int, count: int) -> int:
        return index.reserve(stream, replica, first, count)

    return reserve


def _pack(stream: bytes, replica: bytes | None, first: int, count: int, flags: int) -> bytes:
    body = _ENTRY.pack(stream, replica or _NO_REPLICA, first, count, flags, 0)[:_CRC_SPAN]
    return body + zlib.crc32(body).to_bytes(4, "little")


def pack_entry(stream: bytes, replica: bytes | None, first: int, count: int) -> bytes:
    """The entry of a write of ``count`` events from ``first`` in the log
    named by (``stream``, ``replica``: None for the plain log)."""
    return _pack(stream, replica, first, count, _REPLICA if replica else 0)


VOID_ENTRY = _pack(bytes(32), None, 0, 0, _VOID)
"""An entry that names no write (recovery found no batch carrying its number)."""


def _boot_id() -> str | None:
    try:
        with open(_BOOT_ID, encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


class FeedIndex:
    """This process's handle on the index (one per open store)."""

    def __init__(self, root: str, *, read_only: bool) -> None:
        self._directory = os.path.join(root, "feed")
        self.path = os.path.join(self._directory, "index")
        self._root = root
        self.read_only = read_only
        self._fd: int | None = None
        self._writing = threading.Lock()  # write + lseek: one thread at a time
        self._short: tuple[int, int] | None = None  # (entries, synced): lost ones, read-only

    # -- opening and closing ------------------------------------------------------

    def open(self) -> None:
        """Open the index (created if missing); after a reboot, or if it was
        lost, first bring it up to date with the logs (module docstring).
        Blocking."""
        if self.read_only:
            with contextlib.suppress(FileNotFoundError):
                self._fd = os.open(self.path, os.O_RDONLY)
            self._short = self._lost_entries()
            return
        private_makedirs(self._directory)
        lock = os.open(os.path.join(self._directory, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._check_boot()
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        finally:
            os.close(lock)  # (releases the flock)

    def close(self) -> None:
        """Sync the index and record how much of it is durable: the next
        boot's first open then has nothing to restore."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if not self.read_only:
                with contextlib.suppress(OSError):
                    count = os.fstat(fd).st_size // ENTRY_SIZE
                    os.fdatasync(fd)  # (whatever the store's durability: one per close)
                    self._record_synced(count)
        finally:
            os.close(fd)

    def _synced_path(self) -> str:
        return os.path.join(self._directory, "synced")

    def _record_synced(self, count: int, *, restoring: bool = False) -> None:
        """Record that ``count`` entries are durable (``restoring``: that
        they are being restored from ``count`` on; until recorded done, an
        open restores them again)."""
        boot = _RESTORING if restoring else _boot_id() or "-"
        write_file_atomically(self._synced_path(), f"{boot} {count}\n".encode("ascii"))

    def _synced(self) -> tuple[str, int] | None:
        """The last sync record: (boot id, entries synced); None if missing
        or unreadable."""
        try:
            with open(self._synced_path(), encoding="ascii") as handle:
                recorded_boot, recorded_count = handle.read().split()
            return recorded_boot, int(recorded_count)
        except (FileNotFoundError, ValueError):
            return None

    def _lost_entries(self) -> tuple[int, int] | None:
        """(entries, synced) if the index holds fewer whole entries than its
        last sync record says were synced (it was moved aside, deleted or
        cut); else None."""
        record = self._synced()
        if record is None:
            return None
        size = 0 if self._fd is None else os.fstat(self._fd).st_size
        entries = size // ENTRY_SIZE
        return (entries, record[1]) if entries < record[1] else None

    def _check_boot(self) -> None:
        """Under the index's lock: if the machine rebooted since the index was
        last known durable, restore what the reboot may have lost of it; if
        the index (or its sync record) was lost, rebuild it."""
        boot = _boot_id()
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        record = self._synced()
        if record is None:  # lost (or a new store): trust none of the index, rebuild it
            self._restore(0, "without its sync record feed/synced, rebuilt")
            return
        recorded_boot, durable = record
        if recorded_boot == _RESTORING:  # a restore did not finish: do it again
            self._restore(durable, "restored again (a restore was interrupted)")
            return
        if size // ENTRY_SIZE < durable:  # moved aside, deleted or cut: rebuild what is gone
            self._restore(
                size // ENTRY_SIZE,
                f"holding {size // ENTRY_SIZE} of the {durable} entries its last sync held, "
                f"rebuilt",
            )
            return
        if boot is None or recorded_boot == boot:
            return  # the same boot: whatever was written is there (page cache)
        if size == durable * ENTRY_SIZE:
            self._record_synced(durable)  # nothing was written after the last sync
            return
        self._restore(durable, "restored after a reboot")

    def _restore(self, durable: int, why: str) -> None:
        """Re-create entries ``durable`` and on from the logs' frames (voids
        where no frame carries a number), and cut what lies past them, in
        place (feed_recovery.py), the sync record saying "restoring" until
        done. O(logs + data written since entry ``durable``); from 0,
        O(size of the logs). Logged (``why``: what was done and why) unless
        nothing was found."""
        from calliope.adapters.files.feed_recovery import restore_index

        started = time.monotonic()
        self._record_synced(durable, restoring=True)
        end, writes = restore_index(self._root, self.path, durable)
        self._record_synced(end)
        if end > durable or writes:
            logger.warning(
                "the feed index %s, %s: entries %d to %d from the logs' frames (%d writes) "
                "in %.2f s",
                self.path,
                why,
                durable,
                end,
                writes,
                time.monotonic() - started,
            )

    # -- writing ------------------------------------------------------------------

    def reserve(self, stream: bytes, replica: bytes | None, first: int, count: int) -> int:
        """Append an entry for a write of ``count`` events from ``first`` in
        the log named by (``stream``, ``replica``); its number. Blocking
        (one write)."""
        fd = self._fd
        if fd is None:
            raise StorageError(
                f"the feed index {self.path} is not open (the store is closed or read-only)"
            )
        data = pack_entry(stream, replica, first, count)
        with self._writing:
            written = os.write(fd, data)
            end = os.lseek(fd, 0, os.SEEK_CUR)
        if written != ENTRY_SIZE or end % ENTRY_SIZE:
            raise StorageError(
                f"the feed index {self.path} ends at byte {end}, not at an entry's end: it was "
                f"cut or written by other software. {_REBUILD}"
            )
        return end // ENTRY_SIZE - 1

    # -- reading ------------------------------------------------------------------

    def end(self) -> int:
        """The number after the last whole entry (0: empty)."""
        fd = self._reader_fd()
        return 0 if fd is None else os.fstat(fd).st_size // ENTRY_SIZE

    def _reader_fd(self) -> int | None:
        if self._fd is None and self.read_only:
            with contextlib.suppress(FileNotFoundError):
                self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def read(self, start: int, limit: int) -> list[IndexEntry]:
        """Entries ``start`` on, at most ``limit`` (whole ones). Blocking.
        An entry that fails its check is looked at again for a while (its
        writer may be copying it in); then it is damage (CorruptJournalError)."""
        if self._short is not None:
            held, synced = self._short
            raise CorruptJournalError(
                f"the feed index {self.path} holds {held} entries, but its last sync held "
                f"{synced}: it was moved aside, deleted or cut. Open the store writable (not "
                f"read_only) with no app running: it is rebuilt from the logs' frames, every "
                f"event at the position it had",
                path=self.path,
                offset=held * ENTRY_SIZE,
            )
        fd = self._reader_fd()
        if fd is None or limit <= 0:
            return []
        for attempt in range(_RETRIES):
            data = os.pread(fd, limit * ENTRY_SIZE, start * ENTRY_SIZE)
            entries: list[IndexEntry] = []
            bad = _parse(data, start, entries)
            if bad is None:
                return entries
            if entries:
                return entries  # the damaged or unfinished one: next read
            if attempt < _RETRIES - 1:
                time.sleep(0.005)
        raise CorruptJournalError(
            f"the feed index {self.path} has a damaged entry at byte offset "
            f"{start * ENTRY_SIZE}. {_REBUILD}",
            path=self.path,
            offset=start * ENTRY_SIZE,
        )


def _parse(data: bytes, start: int, into: list[IndexEntry]) -> int | None:
    """Parse whole entries of ``data`` into ``into``; the number of the first
    that fails its check, or None. O(entries)."""
    whole = len(data) - len(data) % ENTRY_SIZE
    crc32 = zlib.crc32
    offset = 0
    number = start
    for stream, replica, first, count, flags, crc in _ENTRY.iter_unpack(data[:whole]):
        if crc32(data[offset : offset + _CRC_SPAN]) != crc:
            return number
        into.append(
            IndexEntry(
                number, stream, replica if flags & _REPLICA else None, first, count, flags > 1
            )
        )
        offset += ENTRY_SIZE
        number += 1
    return None
