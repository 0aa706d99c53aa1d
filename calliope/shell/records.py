"""Turning stored records into envelopes (the shell's side of the codec)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TypeVar, cast

from calliope.core.envelope import Envelope
from calliope.core.version_vector import VersionVector
from calliope.shell.ports import RecordBatch

__all__ = ["EPOCH", "envelopes_of", "from_timestamp_us", "to_timestamp_us"]

E = TypeVar("E")

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


def to_timestamp_us(moment: datetime.datetime) -> int:
    """Microseconds since the Unix epoch (``moment`` must be timezone-aware)."""
    return (moment - EPOCH) // _MICROSECOND


def from_timestamp_us(micros: int) -> datetime.datetime:
    return EPOCH + datetime.timedelta(microseconds=micros)


def envelopes_of(stream_id: str, batch: RecordBatch, events: Sequence[E]) -> list[Envelope[E]]:
    """The envelopes of a stored batch whose events are already decoded."""
    if len(events) == 1:  # the usual persist
        return [
            Envelope(
                stream_id=stream_id,
                replica_id=batch.writer,
                sequence=batch.first_sequence,
                version=VersionVector.unchecked(cast(dict[str, int], batch.version)),
                timestamp=from_timestamp_us(batch.timestamp_us),
                event=events[0],
            )
        ]
    writer = batch.writer
    base = dict(batch.version)
    own = base[writer]
    timestamp = from_timestamp_us(batch.timestamp_us)
    first = batch.first_sequence
    envelopes = []
    for index, event in enumerate(events):
        version = dict(base) if index else base
        version[writer] = own + index
        envelopes.append(
            Envelope(
                stream_id=stream_id,
                replica_id=writer,
                sequence=first + index,
                # Calliope's own checksummed data: no re-validation needed.
                version=VersionVector.unchecked(version),
                timestamp=timestamp,
                event=event,
            )
        )
    return envelopes
