"""A batch as a PostgreSQL ``batches`` row holds it: the file store's frame
payload (batch_format.py), decoded by the same code."""

from __future__ import annotations

from collections.abc import Sequence

from calliope.adapters.files.batch_format import batch_frame_parts, decode_batch
from calliope.core.replication import RecordBatch

__all__ = ["batch_of", "payload_of"]


def payload_of(batch: RecordBatch, items: Sequence[bytes]) -> bytes:
    """The batch as the file store frames it (its feed number is the row's
    ``feed_entry``, known only as the row is written)."""
    parts = batch_frame_parts(
        batch.first_sequence, batch.writer, dict(batch.version), batch.timestamp_us, items
    )
    return b"".join(parts[1:])  # (parts[0] is the file store's frame header)


def batch_of(
    payload: bytes, feed_entry: int | None = None, *, row: str = "a PostgreSQL batches row"
) -> RecordBatch:
    """The batch a row's payload holds; CorruptJournalError naming ``row``
    (say which: the table, stream, replica and sequence) if it holds none."""
    batch = decode_batch(payload, path=row, offset=-1)
    if batch is None:
        raise ValueError("a batches row holds no batch")
    return batch if feed_entry is None else batch._replace(feed_entry=feed_entry)
