"""The replication protocol's rules, checked against the definitions they
shortcut (version-vector comparison, full sorts), with no asyncio."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from hypothesis import assume, given
from hypothesis import strategies as st

from calliope.core.causal_delivery import CausalBuffer
from calliope.core.causal_order import causal_order
from calliope.core.envelope import Envelope
from calliope.core.replication import (
    RecordBatch,
    ReplicaPage,
    RoundReplies,
    StoredEvent,
    concurrent_range,
    deliver_page,
    event_version,
    first_version,
    round_ranges,
)
from calliope.core.version_vector import Ordering, VersionVector
from calliope.shell.replica_merge import ReplicaMerge
from calliope.testing.histories import causal_histories

REPLICAS = ["a", "b", "c"]
versions = st.dictionaries(st.sampled_from(REPLICAS), st.integers(1, 6), max_size=3)


@st.composite
def batches(draw: st.DrawFn) -> RecordBatch:
    writer = draw(st.sampled_from(REPLICAS))
    previous = draw(versions)
    observed = draw(versions)
    count = draw(st.integers(1, 5))
    first = first_version(previous, writer, observed)
    return RecordBatch(first[writer], writer, first, 0, [("t", 1, n) for n in range(count)])


@given(versions, st.sampled_from(REPLICAS), versions)
def test_a_new_batch_follows_what_its_writer_saw(
    previous: dict[str, int], writer: str, observed: dict[str, int]
) -> None:
    first = VersionVector(first_version(previous, writer, observed))
    assert VersionVector(previous) < first
    others = {r: c for r, c in observed.items() if r != writer}
    assert VersionVector(others) <= first
    assert first[writer] == previous.get(writer, 0) + 1
    # Nothing else: the merge of what it followed, plus one at the writer.
    expected = VersionVector(previous).merge(VersionVector(others)).to_dict()
    expected[writer] = previous.get(writer, 0) + 1
    assert first.to_dict() == expected


@given(batches(), versions)
def test_concurrent_range_is_exactly_the_concurrent_events(
    batch: RecordBatch, version: dict[str, int]
) -> None:
    target = VersionVector(version)
    expected = [
        index
        for index in range(len(batch.items))
        if VersionVector(event_version(batch.version, batch.writer, index)).compare(target)
        is Ordering.CONCURRENT
    ]
    assert list(concurrent_range(batch, version)) == expected


@given(
    st.lists(batches(), max_size=6),
    versions,
    st.sampled_from(REPLICAS),
    st.integers(1, 3),
    st.integers(0, 8),
    st.data(),
)
def test_round_replies_list_the_first_concurrent_events_in_causal_order_and_count_the_rest(
    stored: list[RecordBatch],
    previous: dict[str, int],
    own: str,
    count: int,
    limit: int,
    data: st.DataObject,
) -> None:
    """Offered a page at a time, a round's replies list, per event of the
    round, exactly the first ``limit`` concurrent stored events by causal
    sort key, and count the rest."""
    others = [batch for batch in stored if batch.writer != own]
    keys = [(b.total_at(i), b.writer) for b in others for i in range(len(b.items))]
    assume(len(keys) == len(set(keys)))  # as in real logs: a writer's totals only grow
    first = first_version(previous, own, None)
    replies = RoundReplies(first=first, own=own, count=count, limit=limit)
    cut = data.draw(st.integers(0, len(others)))
    replies = replies.offer(others[:cut]).offer(others[cut:])
    for index in range(count):
        mine = VersionVector(event_version(first, own, index))
        concurrent = sorted(
            (
                (batch.total_at(i), batch.writer, batch.first_sequence + i)
                for batch in others
                for i in range(len(batch.items))
                if VersionVector(batch.version_at(i)).compare(mine) is Ordering.CONCURRENT
            ),
        )
        selection = replies.selection(index, limit)
        listed = [(b.total_at(i), b.writer, b.first_sequence + i) for b, i in selection.listed]
        assert listed == concurrent[:limit]
        assert selection.more == len(concurrent) - len(listed)


@given(causal_histories(max_events=30), st.integers(1, 5), st.data())
def test_merging_pages_delivers_in_causal_sort_order_without_loss_or_repeat(
    history: list[Envelope[int]], page_size: int, data: st.DataObject
) -> None:
    """Reading each replica's log a page at a time (pages of random sizes,
    several events per batch) through a ReplicaMerge, and delivering the
    runs, yields every event once, in the same order as a full causal sort."""
    logs: dict[str, list[RecordBatch]] = {}
    for env in history:
        log = logs.setdefault(env.replica_id, [])
        last = log[-1] if log else None
        if (  # an event that follows its writer's previous one joins its batch
            last is not None
            and data.draw(st.booleans())
            and env.version.to_dict() == last.version_at(len(last.items))
        ):
            log[-1] = last._replace(items=[*last.items, ("t", 1, env.event)])
        else:
            log.append(
                RecordBatch(
                    env.sequence, env.replica_id, env.version.to_dict(), 0, [("t", 1, env.event)]
                )
            )

    def read(known: Mapping[str, int], exclude: Collection[str]) -> list[ReplicaPage]:
        pages = []
        for replica, log in logs.items():
            if replica in exclude:
                continue
            after = known.get(replica, 0)
            new = [b.sliced(after + 1, None) for b in log if b.last_sequence > after]
            limit = data.draw(st.integers(1, page_size))
            taken: list[RecordBatch] = []
            for batch in new:
                if batch is None or sum(len(b.items) for b in taken) >= limit:
                    break
                taken.append(batch)
            if taken:
                pages.append(ReplicaPage(replica, taken, len(taken) < len(new)))
        return pages

    merge = ReplicaMerge({})
    buffer: CausalBuffer[StoredEvent] = CausalBuffer()
    delivered: list[tuple[str, int]] = []
    for _ in range(4 * len(history) + 2):
        if merge.stalled:
            wanted = merge.wanted()
            excluded = () if wanted is None else wanted
            merge.feed(read(merge.known, excluded), excluded)
        merged = merge.runs()
        buffer, released = deliver_page(buffer, merged)
        for batch, start, stop in released:
            delivered.extend((batch.writer, batch.first_sequence + i) for i in range(start, stop))
        if not merged and not merge.stalled:
            break
    expected = [(e.replica_id, e.sequence) for e in causal_order(history)]
    assert delivered == expected
    assert buffer.pending == 0


@given(batches(), versions, st.sampled_from(REPLICAS), st.integers(1, 4))
def test_round_ranges_pair_exactly_the_concurrent_events_of_a_round(
    other: RecordBatch, previous: dict[str, int], own: str, count: int
) -> None:
    """A round of ``count`` events by ``own``: each of ``other``'s events is
    paired with exactly the round's events it is concurrent with."""
    if other.writer == own:
        return
    first = first_version(previous, own, None)
    pairs = {
        (i, j)
        for rounds, indexes in round_ranges(other, first, own, count)
        for i in rounds
        for j in indexes
    }
    expected = {
        (i, j)
        for i in range(count)
        for j in range(len(other.items))
        if VersionVector(event_version(first, own, i)).compare(VersionVector(other.version_at(j)))
        is Ordering.CONCURRENT
    }
    assert pairs == expected
