"""Test helpers shared by unit and integration tests."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import attrs

from calliope.adapters.codec import Codec
from calliope.adapters.memory import MemoryChanges, MemoryEventLog
from calliope.shell.replicated_stream import ReplicatedEventStream
from calliope.shell.scope import AppScope

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@attrs.frozen
class Note:
    text: str


def open_scope(name: str = "test") -> AppScope:
    """An app scope that is open, for handles built without an app."""
    scope = AppScope(name)
    scope.state = "open"
    return scope


def note_handle(
    port: MemoryEventLog, replica: str, codec: Any = None
) -> ReplicatedEventStream[Note]:
    """Replica ``replica``'s handle on replicated stream "s" of ``port``'s
    memory store, built directly (no app): tests give it a port wrapper."""
    return ReplicatedEventStream(
        "s",
        Note,
        replica,
        log=port,
        changes=MemoryChanges(port._backend),
        codec=codec or Codec().for_type(Note),
        clock=lambda: T0,
        scope=open_scope(),
    )


def flip_byte(path: Path, offset: int, mask: int = 0xFF) -> None:
    """Damage ``path`` on purpose: XOR its byte at ``offset`` (negative:
    from the end) with ``mask``."""
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))
