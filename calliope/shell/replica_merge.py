"""Merging replica logs read a page at a time into one causal sort order.

A :class:`ReplicaMerge` holds, per replica log, the rest of the last page
read from it (at most one page: ``PAGE`` events, whole batches) and hands
out *runs*: events in ascending (version total, replica id), the
deterministic order that extends causality. It stops handing out when a
log whose buffer ran dry may hold more (its next events could sort before
the other logs' heads); the reader then asks storage for a page of exactly
those logs (:meth:`ReplicaMerge.wanted`), in one call, and feeds it back.
So memory is bounded by a page per replica whatever the backlog, nothing
is read twice, and a reader that stops asking stops reading.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

from calliope.core.replication import RecordBatch, ReplicaPage

__all__ = ["PAGE", "ReplicaMerge"]

PAGE = 1024
"""Events read from each replica log per page."""


class _Cursor:
    """The unread rest of one replica log's last page."""

    __slots__ = ("batches", "index", "replica", "total")

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self.batches: deque[RecordBatch] = deque()
        self.index = 0  # of the head event in batches[0]
        self.total = 0  # version total of the head event

    def extend(self, batches: list[RecordBatch]) -> None:
        empty = not self.batches
        self.batches.extend(batches)
        if empty and self.batches:
            self.index = 0
            self.total = sum(self.batches[0].version.values())

    def take_all(self) -> list[tuple[RecordBatch, int, int]]:
        """Every buffered event, as segments."""
        segments = [(self.batches[0], self.index, len(self.batches[0].items))]
        segments.extend((batch, 0, len(batch.items)) for batch in list(self.batches)[1:])
        self.batches.clear()
        self.index = 0
        return segments

    def collect(
        self, bound: tuple[int, str] | None, into: list[tuple[int, str, int, RecordBatch]]
    ) -> None:
        """Move the buffered events sorting at or before ``bound`` (all for
        None) into ``into`` as (total, replica, index, batch)."""
        replica = self.replica
        limit = None if bound is None else bound[0] - (0 if replica <= bound[1] else 1)
        batches = self.batches
        while batches:
            batch = batches[0]
            base = sum(batch.version.values())
            start = self.index
            stop = len(batch.items)
            if limit is not None:
                stop = min(stop, limit - base + 1)
            if stop > start:
                into.extend((base + i, replica, i, batch) for i in range(start, stop))
            if stop < len(batch.items):
                self.index = max(start, stop)
                self.total = base + self.index
                return
            batches.popleft()
            self.index = 0
        self.total = 0


class ReplicaMerge:
    """The merge state of one reader of a replicated stream.

    ``known`` maps each replica to the last sequence read from its log.
    Per call of :meth:`runs`, O(events + runs * log replicas).
    """

    def __init__(self, known: dict[str, int], *, skip: str | None = None) -> None:
        self.known = known
        self._skip = skip  # a log never read (its reader learns its events otherwise)
        self._cursors: dict[str, _Cursor] = {}
        # Logs that may hold more than their cursor: None means every log,
        # those not yet seen included (a new replica may appear).
        self._open: set[str] | None = None

    def wanted(self) -> Collection[str] | None:
        """None when the next page must come from every log; else the logs it
        need not come from (those with buffered events, or at their end):
        pass them as ``exclude``."""
        skipped = [] if self._skip is None else [self._skip]
        if self._open is None:
            if not skipped:
                return [replica for replica, cursor in self._cursors.items() if cursor.batches]
            return skipped + [r for r, cursor in self._cursors.items() if cursor.batches]
        return skipped + [
            replica
            for replica, cursor in self._cursors.items()
            if cursor.batches or replica not in self._open
        ]

    @property
    def stalled(self) -> bool:
        """True when runs cannot go on without reading: some log with nothing
        buffered may hold more."""
        if self._open is None:
            return True
        return any(not self._cursor(r).batches for r in self._open)

    def feed(self, pages: list[ReplicaPage], excluded: Collection[str]) -> None:
        """Take a page read with ``exclude=excluded``: a log that was asked
        and returned no page, or a page without ``more``, is at its end."""
        asked_all = self._open is None
        still_open: set[str] = set() if asked_all else set(self._open or ())
        for page in pages:
            cursor = self._cursor(page.replica)
            cursor.extend(page.batches)
            if page.batches:
                last = page.batches[-1].last_sequence
                if last > self.known.get(page.replica, 0):
                    self.known[page.replica] = last
            if page.more:
                still_open.add(page.replica)
            else:
                still_open.discard(page.replica)
        if not asked_all:
            returned = {page.replica for page in pages}
            for replica in list(still_open):
                if replica not in excluded and replica not in returned:
                    still_open.discard(replica)  # asked, nothing new: at its end
        self._open = still_open

    def reopen(self) -> None:
        """The stream may have grown: every log may hold more again."""
        self._open = None

    def _cursor(self, replica: str) -> _Cursor:
        cursor = self._cursors.get(replica)
        if cursor is None:
            cursor = self._cursors[replica] = _Cursor(replica)
        return cursor

    def runs(self) -> list[tuple[RecordBatch, int, int]]:
        """Every event that can be ordered before the next read, in causal
        sort order, as ``(batch, start, stop)`` segments ([] when a log must
        be read first).

        An event can be ordered once no log that may hold more could still
        return something sorting before it: up to the smallest last key
        buffered among such logs (all of it if every log is at its end).
        The events up to there are sorted in one call (logs written
        concurrently interleave event by event, so a heap would pay per
        event in Python). O(n log n) for n events, in C.
        """
        if self.stalled:
            return []
        open_logs = self._open or set()
        cursors = [cursor for cursor in self._cursors.values() if cursor.batches]
        bound: tuple[int, str] | None = None
        for cursor in cursors:
            if cursor.replica in open_logs:
                last = cursor.batches[-1]
                key = (sum(last.version.values()) + len(last.items) - 1, cursor.replica)
                if bound is None or key < bound:
                    bound = key
        if len(cursors) == 1:
            return cursors[0].take_all()
        entries: list[tuple[int, str, int, RecordBatch]] = []
        for cursor in cursors:
            cursor.collect(bound, entries)
        entries.sort()  # (total, replica) is unique per event: batches are never compared
        segments: list[tuple[RecordBatch, int, int]] = []
        last_batch: RecordBatch | None = None
        start = stop = 0
        for _, _, index, batch in entries:
            if batch is last_batch and index == stop:
                stop += 1
                continue
            if last_batch is not None:
                segments.append((last_batch, start, stop))
            last_batch, start, stop = batch, index, index + 1
        if last_batch is not None:
            segments.append((last_batch, start, stop))
        return segments
