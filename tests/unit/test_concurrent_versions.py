"""ConcurrentVersions: the two-replica cart example from its docstring."""

from __future__ import annotations

import pytest

from calliope import ConcurrentVersions, Envelope, VersionVector
from calliope.errors import InvalidArgumentError
from calliope.testing.histories import envelope


def env(replica: str, event: str, **version: int) -> Envelope[str]:
    return envelope(replica, event, version, stream_id="cart")


def add(items: frozenset[str], event: str) -> frozenset[str]:
    if event.startswith("merged:"):
        return frozenset(event.removeprefix("merged:").split(","))
    return items | {event}


def test_sequential_events_keep_one_version() -> None:
    versions = ConcurrentVersions(frozenset[str](), add).update_all(
        [env("a", "apple", a=1), env("b", "pear", a=1, b=1)]
    )
    assert not versions.conflict
    assert versions.state == {"apple", "pear"}
    assert versions.version == VersionVector({"a": 1, "b": 1})


def test_concurrent_events_branch_and_a_resolving_event_joins_them() -> None:
    start = ConcurrentVersions(frozenset[str](), add).update(env("a", "bread", a=1))
    # a and b both saw "bread", then edited without talking to each other.
    branched = start.update(env("a", "apple", a=2)).update(env("b", "pear", a=1, b=1))
    assert branched.conflict
    assert [leaf.state for leaf in branched.all] == [
        {"bread", "apple"},
        {"bread", "pear"},
    ]
    # b learns of a's edit and writes an event that follows both and says the result.
    resolved = branched.update(env("b", "merged:bread,apple,pear", a=2, b=2))
    assert not resolved.conflict
    assert resolved.state == {"bread", "apple", "pear"}


def test_resolve_joins_the_leaves_locally() -> None:
    branched = ConcurrentVersions(frozenset[str](), add).update_all(
        [env("a", "apple", a=1), env("b", "pear", b=1)]
    )
    joined = branched.resolve(lambda states: frozenset().union(*states))
    assert not joined.conflict
    assert joined.state == {"apple", "pear"}
    assert joined.version == VersionVector({"a": 1, "b": 1})


def test_a_late_concurrent_event_branches_from_its_own_past() -> None:
    versions = ConcurrentVersions(frozenset[str](), add).update_all(
        [env("a", "one", a=1), env("a", "two", a=2), env("a", "three", a=3)]
    )
    late = versions.update(env("b", "late", a=1, b=1))  # saw only "one"
    assert [leaf.state for leaf in late.all] == [{"one", "late"}, {"one", "two", "three"}]


def test_compaction_at_a_stable_point_keeps_the_leaves() -> None:
    versions = ConcurrentVersions(frozenset[str](), add).update_all(
        [env("a", "one", a=1), env("a", "two", a=2), env("b", "x", a=2, b=1)]
    )
    compacted = versions.compact(VersionVector({"a": 2, "b": 1}))
    assert compacted.all == versions.all
    assert compacted.kept < versions.kept
    after = compacted.update(env("a", "three", a=3, b=1))
    assert after.state == versions.update(env("a", "three", a=3, b=1)).state


def count(total: int, event: int) -> int:
    return total + event


def test_one_replica_folds_20000_events_keeping_a_bounded_number_of_states() -> None:
    events = [envelope("a", 1, {"a": n}) for n in range(1, 20_001)]
    versions = ConcurrentVersions(0, count)
    most = 0
    for event in events:
        # Every replica has seen the event before this one: it is stable.
        versions = versions.update(event, stable=VersionVector({"a": event.sequence - 1}))
        most = max(most, versions.kept)
    assert versions.state == 20_000
    assert most <= 2
    # Without a stable point every state may still be a base, so all are kept.
    assert ConcurrentVersions(0, count).update_all(events).kept == 20_001


def test_an_event_below_the_stable_point_is_refused() -> None:
    versions = ConcurrentVersions(frozenset[str](), add).update_all(
        [env("a", "one", a=1), env("a", "two", a=2)]
    )
    compacted = versions.compact(VersionVector({"a": 2}))
    assert compacted.stable == VersionVector({"a": 2})
    with pytest.raises(InvalidArgumentError, match="stable point"):
        compacted.update(env("b", "late", a=1, b=1))  # so a=2 was not stable
