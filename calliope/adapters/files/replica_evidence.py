"""What other replicas observed of a replica: evidence of its acknowledged
events.

Every event's version names what its writer had observed of the other
replicas, and a replica log's last version dominates its earlier ones, so
the highest sequence of replica R named by the other logs' last versions is
a sequence R acknowledged. R's own log must hold it: otherwise R lost
acknowledged events, and a new event of R would take a sequence number
others have already seen.
"""

from __future__ import annotations

from collections.abc import Iterable

from calliope.adapters.files.segment_log import SegmentLog
from calliope.errors import CorruptJournalError

__all__ = ["check_holds_observed", "observed_of"]


def observed_of(replica_id: str, others: Iterable[SegmentLog]) -> int:
    """The highest sequence of ``replica_id`` the ``others`` logs' last
    versions name (blocking; O(logs))."""
    return max((log.peek_last_version().get(replica_id, 0) for log in others), default=0)


def check_holds_observed(own: SegmentLog, replica_id: str, observed: int) -> None:
    """CorruptJournalError unless ``own`` (the log of ``replica_id``) holds
    up to ``observed`` (blocking; O(1))."""
    held = own.peek_last()
    if observed > held:
        raise CorruptJournalError(
            f"other replicas of stream {own.stream_id!r} have observed events of replica "
            f"{replica_id!r} up to sequence {observed}, but its log in {own.directory} holds "
            f"only {held}: it lost acknowledged events, and new ones would take sequence "
            f"numbers others have already seen. Restore that log from a backup, or write "
            f"this stream under a new replica_id",
            path=own.directory,
            offset=0,
        )
