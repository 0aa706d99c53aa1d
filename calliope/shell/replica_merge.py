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

import heapq
from collections import deque
from collections.abc import Collection, Iterator

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

    def take(self, bound: tuple[int, str] | None) -> tuple[RecordBatch, int, int]:
        """The head batch's events from the head that sort before ``bound``
        (all of them for None; at least the head): ``(batch, start, stop)``."""
        batch = self.batches[0]
        start = self.index
        stop = len(batch.items)
        if bound is not None:
            total, replica = bound
            # Event i sorts before the bound iff its total is below the
            # bound's, or equal with a smaller replica id.
            limit = total - self.total + (1 if self.replica < replica else 0)
            stop = min(stop, start + max(limit, 1))
        if stop < len(batch.items):
            self.index = stop
            self.total += stop - start
        else:
            self.batches.popleft()
            self.index = 0
            if self.batches:
                self.total = sum(self.batches[0].version.values())
        return batch, start, stop


class ReplicaMerge:
    """The merge state of one reader of a replicated stream.

    ``known`` maps each replica to the last sequence read from its log.
    Per call of :meth:`runs`, O(events + runs * log replicas).
    """

    def __init__(self, known: dict[str, int]) -> None:
        self.known = known
        self._cursors: dict[str, _Cursor] = {}
        # Logs that may hold more than their cursor: None means every log,
        # those not yet seen included (a new replica may appear).
        self._open: set[str] | None = None

    def wanted(self) -> Collection[str] | None:
        """None when the next page must come from every log; else the logs it
        need not come from (those with buffered events, or at their end):
        pass them as ``exclude``."""
        if self._open is None:
            return [replica for replica, cursor in self._cursors.items() if cursor.batches]
        return [
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

    def runs(self) -> Iterator[list[tuple[RecordBatch, int, int]]]:
        """Events in causal sort order, in runs of ``(batch, start, stop)``
        segments (a run ends when another log's head comes first), until a
        log must be read again or all are empty."""
        if self.stalled:
            return
        open_logs = self._open or set()
        cursors = [cursor for cursor in self._cursors.values() if cursor.batches]
        heap = [(cursor.total, cursor.replica, n) for n, cursor in enumerate(cursors)]
        heapq.heapify(heap)
        while heap:
            n = heap[0][2]
            cursor = cursors[n]
            bound: tuple[int, str] | None = None
            if len(heap) > 1:
                bound = heap[1][:2]
                if len(heap) > 2 and heap[2][:2] < bound:
                    bound = heap[2][:2]
            run = [cursor.take(bound)]
            while cursor.batches and (bound is None or (cursor.total, cursor.replica) < bound):
                run.append(cursor.take(bound))
            yield run
            if cursor.batches:
                heapq.heapreplace(heap, (cursor.total, cursor.replica, n))
            else:
                heapq.heappop(heap)
                if cursor.replica in open_logs:
                    return  # its next events may sort before the other heads: read
