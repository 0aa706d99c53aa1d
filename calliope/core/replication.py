"""The replication protocol: the rules every adapter and handle share.

Like h11 for HTTP, this module holds the whole protocol of event logs and
replicated streams as values and pure functions; adapters (memory, files,
PostgreSQL) store and return what it decides, and the shell performs the
I/O it implies. Everything that decides a version, or which stored event a
writer or reader must see, lives here, once.

**Versions of a new batch.** A log's events carry version vectors. A batch
of ``n`` events appended by ``writer`` after the log's last event (version
``previous``), by a writer that has observed ``observed`` of other
replicas, gets :func:`first_version` for its first event, and each later
event of the batch follows the one before it: its writer's entry one
higher (:func:`event_version`). A stored batch therefore needs only its
first version: the rest is derived, never stored, and never re-derived
anywhere but here.

**What a writer must be told after a persist.** A replicated persist
writes first, then reads what other replicas appended since the version
its event followed. Of those stored events, the ones *concurrent* with the
new event (neither in its causal past nor after it) are reported; which
ones is decided from the batches' versions alone (:class:`RoundReplies`),
before anything is decoded, and a reply lists at most ``limit`` of them (the
first in the deterministic causal order) with a count of the rest. Whichever
of two concurrent writers finishes writing second reads the other's event
afterwards, so at least one of them is told.

**Reading many logs in causal order.** A reader reads each replica log a
page at a time (:class:`ReplicaPage`) and merges the pages by (version
total, replica id), which extends causality (the shell's
``ReplicaMerge``). Logs are read one after another while writers go on, so
a reader may meet an event whose cause, in another log, was written after
it passed that log: :func:`deliver_page` holds such an event back, through
:mod:`calliope.core.causal_delivery`, until its cause is read.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import attrs

from calliope.core.causal_delivery import CausalBuffer, receive
from calliope.core.version_vector import VersionVector

__all__ = [
    "RecordBatch",
    "ReplicaPage",
    "concurrent_range",
    "ReplySelection",
    "StoredEvent",
    "deliver_page",
    "next_batch",
    "event_version",
    "first_version",
    "RoundReplies",
    "round_ranges",
]


def first_version(
    previous: Mapping[str, int], writer: str, observed: Mapping[str, int] | None = None
) -> dict[str, int]:
    """The version of the first event of a batch ``writer`` appends.

    ``previous`` is the version of the log's last event ({} for an empty
    log); ``observed`` (replicated streams) is what the writer has seen of
    other replicas, merged in. The writer's own entry is one above
    ``previous``'s: in a replica's own log that entry is the event's
    sequence. O(replicas).
    """
    version = dict(previous)
    if observed:
        for replica, counter in observed.items():
            if replica != writer and counter > version.get(replica, 0):
                version[replica] = counter
    version[writer] = version.get(writer, 0) + 1
    return version


def event_version(first: Mapping[str, int], writer: str, index: int) -> dict[str, int]:
    """The version of event ``index`` (from 0) of a batch whose first event
    has version ``first``: each event follows the one before it. O(replicas)."""
    version = dict(first)
    version[writer] = version.get(writer, 0) + index
    return version


class RecordBatch(NamedTuple):
    """One atomic append as stored: consecutive events by one writer.

    Event ``i`` (from 0) has sequence ``first_sequence + i`` and version
    :func:`event_version` ``(version, writer, i)``: ``version`` is the first
    event's. ``items`` holds ``(type_name, schema_version, data)`` per event,
    as plain data (the codec's output, opaque here). All events share
    ``timestamp_us`` (microseconds since the Unix epoch, UTC).
    """

    first_sequence: int
    writer: str
    version: Mapping[str, int]
    timestamp_us: int
    items: Sequence[Sequence[Any]]
    # Its entry in the store's feed (ports.FeedPort), where the store records it.
    feed_entry: int | None = None

    @property
    def last_sequence(self) -> int:
        return self.first_sequence + len(self.items) - 1

    @property
    def last_version(self) -> dict[str, int]:
        """The version of the batch's last event."""
        return event_version(self.version, self.writer, len(self.items) - 1)

    def version_at(self, index: int) -> dict[str, int]:
        """The version of event ``index`` (from 0) of the batch."""
        return event_version(self.version, self.writer, index)

    def total_at(self, index: int) -> int:
        """The version total of event ``index``: its causal sort key's first part."""
        return sum(self.version.values()) + index

    def sliced(self, from_sequence: int, to_sequence: int | None) -> RecordBatch | None:
        """The part of the batch within the (inclusive) bounds, or None."""
        first, last = self.first_sequence, self.last_sequence
        start = max(from_sequence, first)
        end = last if to_sequence is None else min(to_sequence, last)
        if start > end:
            return None
        if start == first and end == last:
            return self
        return RecordBatch(
            start,
            self.writer,
            event_version(self.version, self.writer, start - first),
            self.timestamp_us,
            self.items[start - first : end - first + 1],
            self.feed_entry,
        )


def next_batch(
    previous: Mapping[str, int],
    last_sequence: int,
    writer: str,
    items: Sequence[Sequence[Any]],
    timestamp_us: int,
    observed: Mapping[str, int] | None = None,
) -> RecordBatch:
    """The batch ``writer`` appends after a log whose last event has
    ``last_sequence`` and version ``previous``: what an adapter stores."""
    return RecordBatch(
        last_sequence + 1,
        writer,
        first_version(previous, writer, observed),
        timestamp_us,
        items,
    )


# -- what a writer is told ---------------------------------------------------


def _others_at_or_below(first: Mapping[str, int], writer: str, version: Mapping[str, int]) -> bool:
    get = version.get
    return all(
        get(replica, 0) >= counter for replica, counter in first.items() if replica != writer
    )


def _others_at_or_above(first: Mapping[str, int], writer: str, version: Mapping[str, int]) -> bool:
    get = first.get
    return all(
        get(replica, 0) >= counter for replica, counter in version.items() if replica != writer
    )


def concurrent_range(batch: RecordBatch, version: Mapping[str, int]) -> range:
    """The indexes of ``batch``'s events concurrent with ``version`` (neither
    at or below it nor at or above it); a contiguous range, because the
    batch's events differ only in their writer's entry. O(replicas)."""
    writer = batch.writer
    own = batch.version.get(writer, 0)  # the entry of event 0
    seen = version.get(writer, 0)
    count = len(batch.items)
    # Event i is at or below `version` iff the other entries are and own + i <= seen.
    below_end = (
        max(0, min(count, seen - own + 1))
        if _others_at_or_below(batch.version, writer, version)
        else 0
    )
    # Event i is at or above `version` iff the other entries are and own + i >= seen.
    above_start = (
        max(0, seen - own) if _others_at_or_above(batch.version, writer, version) else count
    )
    return range(below_end, max(below_end, min(count, above_start)))


class ReplySelection(NamedTuple):
    """The concurrent events a reply lists, and how many it leaves out.

    ``listed`` are ``(batch, index)`` pairs in the deterministic causal
    order (version total, replica id); ``more`` counts the concurrent events
    beyond the limit.
    """

    listed: list[tuple[RecordBatch, int]]
    more: int


def round_ranges(
    batch: RecordBatch, first: Mapping[str, int], own: str, count: int
) -> Iterator[tuple[range, range]]:
    """For a stored ``batch`` of another replica, which of a round's
    ``count`` events (written by ``own`` as one batch whose first event has
    version ``first``) each of its events is concurrent with.

    Yields ``(round events, batch events)`` pairs of index ranges: every
    event in the second range is concurrent with every event in the first.
    A batch written without seeing the round (the usual case) is concurrent
    with all of the round or none of it: one pair, from one
    :func:`concurrent_range`. O(replicas), or O(replicas) per event for a
    batch whose writer saw part of the round.
    """
    base_own = first.get(own, 0)
    if batch.version.get(own, 0) < base_own and batch.writer != own:
        # Its writer had not seen the round: v_i differ only above what it saw.
        span = concurrent_range(batch, first)
        if span and count:
            yield range(count), span
        return
    for index in range(len(batch.items)):
        version = batch.version_at(index)
        below = all(c <= first.get(r, 0) for r, c in version.items() if r != own)
        above = all(c <= version.get(r, 0) for r, c in first.items() if r != own)
        seen = version.get(own, 0) - base_own  # round events 0..seen are in its past
        if below and above:
            continue
        if below:  # at or below v_i exactly for i >= seen
            span = range(0, min(count, max(0, seen)))
        elif above:  # at or above v_i exactly for i <= seen
            span = range(max(0, seen + 1), count)
        else:
            span = range(count)
        if span:
            yield span, range(index, index + 1)


_Kept = tuple[tuple[int, str, int, RecordBatch], ...]  # (total, writer, index, batch), sorted


@attrs.frozen
class RoundReplies:
    """What the replies of one round will say, built a page at a time.

    A *round* is one batch of ``count`` events that ``own`` appended (its
    first event has version ``first``), one per waiting persist. Pages of
    other replicas' events read afterwards are :meth:`offer`-ed; for each
    range of the round's events that some stored events are concurrent
    with (:func:`round_ranges`), it keeps the first ``limit`` of them in
    causal order and a count of all. So a reply's contents are decided from
    versions alone, with memory O(ranges * limit) whatever was written
    concurrently, and only what a reply lists need ever be decoded.
    """

    first: Mapping[str, int]
    own: str
    count: int
    limit: int
    found: Mapping[tuple[int, int], tuple[int, _Kept]] = attrs.field(factory=dict)

    def offer(self, batches: Iterable[RecordBatch]) -> RoundReplies:
        """Take a page's batches (of other replicas). O(events + batches *
        replicas + kept * limit)."""
        found = dict(self.found)
        for batch in batches:
            for rounds, indexes in round_ranges(batch, self.first, self.own, self.count):
                key = (rounds.start, rounds.stop)
                total, kept = found.get(key, (0, ()))
                found[key] = (total + len(indexes), _keep_first(kept, batch, indexes, self.limit))
        return attrs.evolve(self, found=found)

    def selection(self, index: int, limit: int) -> ReplySelection:
        """The reply of the round's event ``index``: the first ``limit``
        (at most the round's ``limit``) concurrent events in causal order,
        and how many more there are. O(ranges + limit log ranges)."""
        groups = [value for (lo, hi), value in self.found.items() if lo <= index < hi]
        total = sum(count for count, _ in groups)
        ordered = heapq.merge(*(kept for _, kept in groups))  # (total, writer) never ties
        listed = [(batch, i) for _, _, i, batch in itertools.islice(ordered, limit)]
        return ReplySelection(listed, total - len(listed))


def _keep_first(kept: _Kept, batch: RecordBatch, indexes: range, limit: int) -> _Kept:
    """``kept`` with ``batch``'s events at ``indexes`` added, cut to the first
    ``limit`` by causal sort key."""
    if limit <= 0 or not indexes:
        return kept
    base = sum(batch.version.values())
    writer = batch.writer
    if len(kept) >= limit and (base + indexes.start, writer) >= kept[-1][:2]:
        return kept  # sorts after everything kept (and later events more so)
    stop = min(indexes.stop, indexes.start + limit)
    added = [(base + i, writer, i, batch) for i in range(indexes.start, stop)]
    merged = list(heapq.merge(kept, added))
    return tuple(merged[:limit])


# -- reading many logs a page at a time --------------------------------------


class ReplicaPage(NamedTuple):
    """The next events of one replica's log after what a reader knows:
    ``batches`` (cut to the new events, in log order) and whether the log
    holds ``more`` after them (the page was truncated at its bound)."""

    replica: str
    batches: list[RecordBatch]
    more: bool


# -- delivering pages in causal order ----------------------------------------


class StoredEvent(NamedTuple):
    """Event ``offset`` of a stored ``batch``, with its writer and version
    (a :class:`~calliope.core.causal.Causal` value, for causal delivery)."""

    replica_id: str
    version: VersionVector
    batch: RecordBatch
    offset: int  # the event's index in the batch


def deliver_page(
    buffer: CausalBuffer[StoredEvent], segments: Iterable[tuple[RecordBatch, int, int]]
) -> tuple[CausalBuffer[StoredEvent], list[tuple[RecordBatch, int, int]]]:
    """Causal delivery of stored events read in causal sort order, given as
    ``(batch, start, stop)`` segments: the new buffer and the segments
    released, in causal order.

    Same result as :func:`~calliope.core.causal_delivery.receive` of each
    event in turn; but while nothing is held back, a segment that continues
    its writer's delivered events and whose other replicas' past is
    delivered is released whole: O(replicas) per segment. An event whose
    causal past is missing (a cause written after the reader passed its
    log) goes through the buffer, O(replicas) per event, until the buffer
    is empty again.
    """
    delivered = buffer.delivered.to_dict()
    released: list[tuple[RecordBatch, int, int]] = []
    held = buffer if buffer.pending else None
    # Per writer, the batch whose other replicas' past is known delivered
    # (delivered only grows, so one check per batch is enough).
    checked: dict[str, RecordBatch] = {}
    for batch, start, stop in segments:
        writer = batch.writer
        if held is None:
            own = batch.version[writer] + start
            if delivered.get(writer, 0) == own - 1 and (
                checked.get(writer) is batch
                or _others_at_or_below(batch.version, writer, delivered)
            ):
                checked[writer] = batch
                delivered[writer] = own + (stop - start) - 1
                released.append((batch, start, stop))
                continue
            held = attrs.evolve(buffer, delivered=VersionVector.unchecked(delivered))
        for index in range(start, stop):
            item = StoredEvent(
                writer, VersionVector.unchecked(batch.version_at(index)), batch, index
            )
            held, now = receive(held, item)
            released.extend((event.batch, event.offset, event.offset + 1) for event in now)
        if not held.pending:  # nothing held back any more: the fast path again
            delivered = held.delivered.to_dict()
            buffer, held = held, None
    if held is None:
        return attrs.evolve(buffer, delivered=VersionVector.unchecked(delivered)), released
    return held, released
