"""The replication protocol's rules, checked against the definitions they
shortcut (version-vector comparison, full sorts), with no asyncio."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from calliope.core.causal_order import causal_order
from calliope.core.envelope import Envelope
from calliope.core.replication import (
    RecordBatch,
    ReplicaPage,
    concurrent_range,
    event_version,
    first_version,
    merge_page,
    reply_selection,
    round_ranges,
)
from calliope.core.version_vector import Ordering, VersionVector
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


@given(st.lists(batches(), max_size=6), versions, st.integers(0, 8))
def test_a_reply_lists_the_first_concurrent_events_in_causal_order_and_counts_the_rest(
    stored: list[RecordBatch], version: dict[str, int], limit: int
) -> None:
    target = VersionVector(version)
    concurrent = [
        (batch, index)
        for batch in stored
        for index in range(len(batch.items))
        if VersionVector(batch.version_at(index)).compare(target) is Ordering.CONCURRENT
    ]
    ordered = sorted(concurrent, key=lambda e: (e[0].total_at(e[1]), e[0].writer))
    selection = reply_selection(version, stored, limit)
    keys = [(b.total_at(i), b.writer, b.first_sequence + i) for b, i in selection.listed]
    assert keys == [(b.total_at(i), b.writer, b.first_sequence + i) for b, i in ordered[:limit]]
    assert selection.more == len(concurrent) - len(selection.listed)


@given(causal_histories(max_events=30), st.integers(1, 5), st.data())
def test_pages_deliver_in_causal_order_and_resume_without_loss(
    history: list[Envelope[int]], page_size: int, data: st.DataObject
) -> None:
    """Reading each replica's log a page at a time and merging pages yields
    every event once, in the same order as a full causal sort."""
    logs: dict[str, list[RecordBatch]] = {}
    for env in history:
        batch = RecordBatch(
            env.sequence, env.replica_id, env.version.to_dict(), 0, [("t", 1, env.event)]
        )
        logs.setdefault(batch.writer, []).append(batch)
    known: dict[str, int] = {}
    delivered: list[tuple[str, int]] = []
    for _ in range(len(history) + 1):
        pages = []
        for replica, log in logs.items():
            new = [b for b in log if b.first_sequence > known.get(replica, 0)]
            limit = data.draw(st.integers(1, page_size))
            pages.append(ReplicaPage(replica, new[:limit], len(new) > limit))
        taken = merge_page(pages)
        if not taken and not any(p.more for p in pages):
            break
        for batch, index in taken:
            delivered.append((batch.writer, batch.first_sequence + index))
            known[batch.writer] = batch.first_sequence + index
    expected = [(e.replica_id, e.sequence) for e in causal_order(history)]
    assert delivered == expected


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
