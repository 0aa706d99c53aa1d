"""The errors for damaged segment logs: what is wrong, where, what to do.

Every one is a CorruptJournalError naming the file and byte offset. Damage
is never skipped or cut without the user's say: the advice is to restore
the file, or to call ``app.journal.repair`` and lose what is damaged.
"""

from __future__ import annotations

from calliope.adapters.files.extent import Extent
from calliope.adapters.files.segment_files import SegmentFiles
from calliope.errors import CorruptJournalError

__all__ = [
    "EXTENT_DAMAGED_TOO",
    "cut_short",
    "damaged",
    "out_of_sequence",
    "segments_missing",
    "unsealed",
]

EXTENT_DAMAGED_TOO = (
    "the log's committed extent (in its lock file) is damaged too, so a torn write cannot be "
    "told from damage to acknowledged events"
)
"""What makes an unusable last frame damage when the extent record is not
intact: readers and writers say it alike."""


def damaged(files: SegmentFiles, segment: int, offset: int, what: str) -> CorruptJournalError:
    """Damage to acknowledged data of ``segment`` at ``offset``: ``what``
    says what is wrong there, or what shows it was acknowledged."""
    path = files.path(segment)
    return CorruptJournalError(
        f"journal file {path} (stream {files.stream_id!r}) is damaged at byte offset "
        f"{offset}: {what}. Those events were acknowledged, so Calliope will not skip or "
        f"cut them, nor give their sequence numbers to new events. Restore the file from "
        f"a backup or a replica, or call app.journal.repair({files.stream_id!r}) (with "
        f"replica_id= for a replicated stream) to move the damaged part aside, losing "
        f"its events",
        path=path,
        offset=offset,
    )


def unsealed(files: SegmentFiles, segment: int, offset: int) -> CorruptJournalError:
    """A finished segment (a later one exists) that does not end in its seal."""
    return damaged(
        files,
        segment,
        offset,
        "the segment ends there without the seal that must close it, although a later "
        "segment exists",
    )


def out_of_sequence(
    files: SegmentFiles, segment: int, offset: int, expected: int, found: int
) -> CorruptJournalError:
    """A batch holding ``found`` where ``expected`` belongs."""
    return damaged(
        files, segment, offset, f"the batch there holds sequence {found} where {expected} belongs"
    )


def cut_short(
    files: SegmentFiles, segment: int, offset: int, size: int, committed: int
) -> CorruptJournalError:
    """The extent's segment ends at ``size``, before its committed end; its
    intact frames end at ``offset`` (where a repair would cut)."""
    if offset < size:
        where = f"at offset {size}, inside the frame that starts there"
    else:
        where = "there" if offset == size else f"at offset {size}"
    return damaged(
        files,
        segment,
        offset,
        f"the file ends {where}, before its committed end {committed} (it was truncated)",
    )


def segments_missing(files: SegmentFiles, extent: Extent) -> CorruptJournalError:
    """The log has no segment at all, but its extent says events were committed."""
    return damaged(
        files,
        1,
        0,
        f"the segment file is missing (the log has none), although its committed extent (in "
        f"its lock file) says events up to sequence {extent.last_sequence} were written and "
        f"fsynced",
    )
