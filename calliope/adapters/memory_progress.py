"""Replica progress and heartbeats in memory (``memory://name`` stores)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from calliope.adapters.read_only import read_only_refused
from calliope.shell.ports import HeartbeatRecord, ProgressRecord

__all__ = ["MemoryProgress"]


class MemoryProgress:
    """Implements :class:`calliope.shell.ports.ProgressPort` on a backend's
    dictionaries (shared by the apps opened with the same name)."""

    def __init__(
        self,
        name: str,
        lock: threading.Lock,
        reports: dict[str, dict[str, ProgressRecord]],
        beats: dict[str, HeartbeatRecord],
        types: dict[str, str],
        *,
        read_only: bool = False,
    ) -> None:
        self._name = name
        self._lock = lock
        self._reports = reports
        self._beats = beats
        self._types = types
        self._read_only = read_only

    def _writable(self, what: str) -> None:
        if self._read_only:
            raise read_only_refused(f"memory://{self._name}", what)

    async def report(
        self, key: str, replica_id: str, delivered: Mapping[str, int], *, timestamp_us: int
    ) -> None:
        self._writable(f"recording progress on key {key!r}")
        record = ProgressRecord(replica_id, dict(delivered), timestamp_us)
        with self._lock:
            self._reports.setdefault(key, {})[replica_id] = record

    async def reporters_token(self, key: str) -> object:
        with self._lock:
            return frozenset(self._reports.get(key, ()))

    async def reports(self, key: str) -> list[ProgressRecord]:
        with self._lock:
            kept = self._reports.get(key, {})
            return [kept[replica] for replica in sorted(kept)]

    async def claim_type(self, key: str, type_name: str) -> str:
        with self._lock:
            if self._read_only:
                return self._types.get(key, type_name)
            return self._types.setdefault(key, type_name)

    async def beat(self, replica_id: str, *, timestamp_us: int, running: bool = True) -> None:
        self._writable("a heartbeat")
        with self._lock:
            self._beats[replica_id] = HeartbeatRecord(replica_id, timestamp_us, running)

    async def heartbeats(self) -> list[HeartbeatRecord]:
        with self._lock:
            return [self._beats[replica] for replica in sorted(self._beats)]
