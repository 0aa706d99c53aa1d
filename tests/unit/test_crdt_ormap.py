"""ORMap: its documented example, nested types, and update-versus-remove."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from calliope import RGA, GCounter, InvalidOperationError, ORMap, ORSet, stable_vector
from calliope.core.crdt import Update
from calliope.testing import Replica
from tests.unit.crdt_support import run_docstring_example


def add_hits(count: int) -> Callable[[ORMap], object]:
    """Increment the "hits" counter by ``count`` (bound now, not late)."""
    return lambda state: state.update("hits", GCounter, lambda c: c.increment(count))


def test_docstring_example() -> None:
    run_docstring_example(ORMap)


def test_values_are_nested_crdts() -> None:
    replica = Replica("a", ORMap)
    replica.update(lambda m: m.update("hits", GCounter, lambda c: c.increment(2)))
    replica.update(lambda m: m.update("tags", ORSet, lambda s: s.add("new")))
    assert replica.value == {"hits": 2, "tags": frozenset({"new"})}
    assert replica.state.get("hits") == replica.state.get("hits", GCounter)
    assert replica.state.get("hits", ORSet) is None and "tags" in replica.state


def test_a_nested_prepare_may_return_several_operations() -> None:
    ops = ORMap().update("doc", RGA, lambda d: (d.insert(0, "a"), d.insert(0, "b")))
    assert isinstance(ops, tuple) and all(isinstance(op, Update) for op in ops)


def test_a_key_of_another_type_is_refused() -> None:
    replica = Replica("a", ORMap)
    replica.update(lambda m: m.update("k", GCounter, lambda c: c.increment()))
    with pytest.raises(InvalidOperationError, match="holds a GCounter, not a ORSet"):
        replica.state.update("k", ORSet, lambda s: s.add(1))


def test_keys_created_concurrently_with_different_types_are_both_kept() -> None:
    a, b = Replica("a", ORMap), Replica("b", ORMap)
    from_a = a.update(lambda m: m.update("k", ORSet, lambda s: s.add(1)))
    from_b = b.update(lambda m: m.update("k", GCounter, lambda c: c.increment(7)))
    a.receive(*from_b)
    b.receive(*from_a)
    assert a.state == b.state
    assert a.value == {"k": 7}  # GCounter sorts before ORSet
    assert a.state.get("k", ORSet).value == frozenset({1})


def test_a_remove_discards_what_it_saw_and_concurrent_inserts_survive() -> None:
    # p is typed and seen by all; then b and c each insert after p while a
    # removes the document. Only b's and c's letters remain, anchored to a p
    # that is gone: they go to the start, in the same order everywhere.
    a, b, c = Replica("a", ORMap), Replica("b", ORMap), Replica("c", ORMap)
    typed = a.update(lambda m: m.update("doc", RGA, lambda d: d.insert(0, "p")))
    b.receive(*typed)
    c.receive(*typed)
    from_b = b.update(lambda m: m.update("doc", RGA, lambda d: d.insert(1, "x")))
    from_c = c.update(lambda m: m.update("doc", RGA, lambda d: d.insert(1, "y")))
    removed = a.update(lambda m: m.remove("doc"))
    a.receive(*from_c, *from_b)
    b.receive(*removed, *from_c)
    c.receive(*from_b, *removed)
    assert a.state == b.state == c.state
    assert a.value["doc"] == ("y", "x")


def test_the_update_log_is_pruned_at_stability() -> None:
    a, b = Replica("a", ORMap), Replica("b", ORMap)
    for n in range(5):
        b.receive(*a.update(add_hits(n)))
    assert len(a.state.entries["hits"][0].log) == 5
    stable = stable_vector([a.delivered, b.delivered])
    a.compact(stable)
    assert len(a.state.entries["hits"][0].log) == 0
    assert a.value["hits"] == 10
    # A remove after stability still removes everything it saw.
    a.update(lambda m: m.remove("hits"))
    assert "hits" not in a.state
