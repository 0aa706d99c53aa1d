"""Laws of the replicator's pure decisions (calliope.core.crdt.quorum)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from calliope.core.crdt.quorum import acknowledgements, read_floor, stability_reports
from calliope.core.crdt.stability import stable_point
from calliope.core.version_vector import VersionVector

REPLICAS = ["a", "b", "c", "d"]

vectors = st.dictionaries(st.sampled_from(REPLICAS), st.integers(1, 6), max_size=4)
vector_lists = st.lists(vectors, min_size=1, max_size=5)


@given(vector_lists, st.integers(1, 6), st.sampled_from(REPLICAS), st.integers(1, 6))
def test_an_operation_is_below_the_read_floor_exactly_when_n_replicas_applied_it(
    delivered: list[dict[str, int]], n: int, origin: str, counter: int
) -> None:
    floor = read_floor(delivered, n)
    applied_by_n = acknowledgements((origin, counter), delivered) >= n
    assert (floor.get(origin, 0) >= counter) == applied_by_n


@given(vector_lists, st.integers(1, 5))
def test_a_larger_quorum_never_reads_more(delivered: list[dict[str, int]], n: int) -> None:
    wider = VersionVector(read_floor(delivered, n))
    narrower = VersionVector(read_floor(delivered, n + 1))
    assert narrower <= wider


@given(vector_lists)
def test_a_read_from_one_replica_includes_everything_any_applied(
    delivered: list[dict[str, int]],
) -> None:
    floor = VersionVector(read_floor(delivered, 1))
    assert all(VersionVector(vector) <= floor for vector in delivered)


@given(
    own=vectors,
    reports=st.dictionaries(st.sampled_from(REPLICAS[1:]), vectors, max_size=3),
    previous=st.dictionaries(st.sampled_from(REPLICAS[1:]), vectors, max_size=3),
    live=st.sets(st.sampled_from(REPLICAS[1:])),
    log_ends=st.dictionaries(st.sampled_from(REPLICAS[1:]), st.integers(0, 6), max_size=3),
)
def test_the_reports_chosen_for_stability_are_usable_and_hold_back_whom_they_must(
    own: dict[str, int],
    reports: dict[str, dict[str, int]],
    previous: dict[str, dict[str, int]],
    live: set[str],
    log_ends: dict[str, int],
) -> None:
    delivered = VersionVector(own)
    usable_before = {
        replica: VersionVector(vector)
        for replica, vector in previous.items()
        if vector.get(replica, 0) <= delivered[replica]
    }
    chosen, usable = stability_reports(
        delivered,
        "a",
        {replica: VersionVector(vector) for replica, vector in reports.items()},
        usable_before,
        live=live,
        log_ends=log_ends,
    )
    stable = stable_point(delivered, chosen)  # never refused: every choice is usable
    assert stable <= delivered
    for replica in {*reports, *log_ends}:
        unfinished = log_ends.get(replica, 0) > delivered[replica]
        if replica in live or unfinished:
            # a live replica, or one whose log is not all applied here, holds
            # stability at or below its newest usable report (nothing if none)
            assert replica in chosen
            assert stable <= chosen[replica]
            assert chosen[replica] == usable.get(replica, VersionVector())
        else:
            assert replica not in chosen
    for replica, vector in usable.items():
        assert vector[replica] <= delivered[replica]
    for replica in {*reports, *log_ends}:
        newest = reports.get(replica)
        if newest is not None and newest.get(replica, 0) <= delivered[replica]:
            assert usable[replica] == VersionVector(newest)  # the newest usable one
        elif replica in usable_before:
            assert usable[replica] == usable_before[replica]  # else the last usable one
        else:
            assert replica not in usable
