"""Turning stored records into envelopes (the shell's side of the codec)."""

from __future__ import annotations

import datetime
from typing import TypeVar

from calliope.core.envelope import Envelope
from calliope.core.version_vector import VersionVector
from calliope.shell.ports import Record

__all__ = ["EPOCH", "from_timestamp_us", "to_envelope", "to_timestamp_us"]

E = TypeVar("E")

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


def to_timestamp_us(moment: datetime.datetime) -> int:
    """Microseconds since the Unix epoch (``moment`` must be timezone-aware)."""
    return (moment - EPOCH) // _MICROSECOND


def from_timestamp_us(micros: int) -> datetime.datetime:
    return EPOCH + datetime.timedelta(microseconds=micros)


def to_envelope(stream_id: str, record: Record, event: E) -> Envelope[E]:
    """The envelope of a record whose event is already decoded."""
    return Envelope(
        stream_id=stream_id,
        replica_id=record.replica_id,
        sequence=record.sequence,
        # Records come from Calliope's own checksummed storage: no re-validation.
        version=VersionVector.unchecked(dict(record.version)),
        timestamp=EPOCH + datetime.timedelta(microseconds=record.timestamp_us),
        event=event,
    )
