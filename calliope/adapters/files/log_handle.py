"""What the file journal holds in this process for one log it uses."""

from __future__ import annotations

from collections import OrderedDict

from calliope.adapters.files.group_commit import FlushGate, GroupCommitter
from calliope.adapters.files.segment_files import Position
from calliope.adapters.files.segment_log import SegmentLog
from calliope.adapters.files.segment_writer import AppendRequest
from calliope.core.replication import RecordBatch

__all__ = ["LogHandle"]

_HINTS = 64  # read hints kept per log


class LogHandle:
    """Everything this process holds for one log (plain or one replica's)."""

    def __init__(self, log: SegmentLog, gate: FlushGate) -> None:
        self.log = log
        self.committer: GroupCommitter[AppendRequest, RecordBatch | None] = GroupCommitter(
            log.append, log.try_append, gate=gate
        )
        self.ready = False  # the directories and id files exist
        self.users = 0  # appends in flight
        # sequence -> where a read step starting at that sequence begins.
        self.hints: OrderedDict[int, Position] = OrderedDict()

    def remember(self, sequence: int, position: Position) -> None:
        self.hints[sequence] = position
        self.hints.move_to_end(sequence)
        if len(self.hints) > _HINTS:
            self.hints.popitem(last=False)

    def hint(self, sequence: int) -> Position | None:
        """Where to start reading for ``sequence``: the hint for it or, else,
        for the nearest sequence below it in the same segment. O(hints)."""
        exact = self.hints.get(sequence)
        if exact is not None:
            return exact
        best: tuple[int, Position] | None = None
        for start, position in self.hints.items():
            if start <= sequence and (best is None or start > best[0]):
                best = (start, position)
        if best is None or best[1].segment > sequence:
            return None
        return best[1]
