"""The errors for damaged segment logs: what is wrong, where, what to do.

Every one is a CorruptJournalError naming the file and byte offset. Damage
is never skipped or cut without the user's say: the advice is to restore
the file, or to call ``app.journal.repair`` and lose what is damaged.
"""

from __future__ import annotations

from calliope.adapters.files.segment_files import SegmentFiles
from calliope.errors import CorruptJournalError

__all__ = ["damaged", "out_of_sequence", "unsealed"]


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
