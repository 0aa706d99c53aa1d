"""MVRegister: its documented two-replica example, and compaction."""

from __future__ import annotations

from calliope import MVRegister, VersionVector
from calliope.testing import Replica
from tests.unit.crdt_support import run_docstring_example


def test_docstring_example() -> None:
    run_docstring_example(MVRegister)


def test_an_overwritten_value_is_dropped_at_once() -> None:
    replica = Replica("a", MVRegister)
    replica.update(lambda r: r.set("old"))
    replica.update(lambda r: r.set("new"))
    assert replica.value == frozenset({"new"})
    assert len(replica.state.entries) == 1


def test_stable_values_lose_their_dots_and_the_next_write_replaces_them() -> None:
    a, b = Replica("a", MVRegister), Replica("b", MVRegister)
    from_a, from_b = a.update(lambda r: r.set(1)), b.update(lambda r: r.set(2))
    a.receive(*from_b)
    b.receive(*from_a)
    stable = VersionVector({"a": 1, "b": 1})
    a.compact(stable)
    assert a.state == MVRegister(stable=frozenset({1, 2}))
    a.update(lambda r: r.set(3))
    assert a.value == frozenset({3})
