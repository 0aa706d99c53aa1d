"""RGA: its documented example, errors, and the situations random histories rarely reach."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from calliope import RGA, InvalidOperationError, Tagged, VersionVector
from calliope.core.crdt import ElementId, Insert, rga_tree, stable_point
from calliope.testing import Replica
from tests.properties.test_rga_laws import check_tree
from tests.unit.crdt_support import run_docstring_example


def insert_at(index: int, value: str) -> Callable[[RGA], object]:
    """The preparation of an insert (its arguments bound now, not late)."""
    return lambda state: state.insert(index, value)


def test_docstring_example() -> None:
    run_docstring_example(RGA)


def test_typing_and_deleting_text() -> None:
    doc = Replica("a", RGA)
    for index, char in enumerate("hello"):
        doc.update(insert_at(index, char))
    doc.update(lambda s: s.delete(0))
    doc.update(lambda s: s.insert(0, "j"))
    assert doc.state.text == "jello"
    assert doc.value == tuple("jello")
    assert len(doc.state) == 5 and doc.state[1] == "e" and list(doc.state) == list("jello")
    assert doc.state.tombstones == 1


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda s: s.insert(2, "x"), r"insert index 2 is out of range .* length 0; use 0\.\.0"),
        (lambda s: s.delete(0), r"delete index 0 is out of range .* the sequence is empty"),
        (lambda s: s.insert(-1, "x"), "out of range"),
        (lambda s: s.insert("0", "x"), "must be an int"),
    ],
)
def test_indexes_out_of_range_are_refused(prepare: Any, message: str) -> None:
    with pytest.raises(InvalidOperationError, match=message):
        prepare(RGA())


def test_concurrent_runs_are_not_interleaved() -> None:
    a, b = Replica("a", RGA), Replica("b", RGA)
    sent_a = [op for i, c in enumerate("abc") for op in a.update(insert_at(i, c))]
    sent_b = [op for i, c in enumerate("xyz") for op in b.update(insert_at(i, c))]
    a.receive(*sent_b)
    b.receive(*sent_a)
    assert a.state == b.state
    assert a.state.text in ("abcxyz", "xyzabc")


def test_a_tombstone_stays_while_what_follows_it_is_not_stable() -> None:
    # a types "AE"; c gets it; b gets it, then writes three letters at the start
    # and "F" after E, so F carries a high Lamport time. a deletes E; everyone
    # gets the delete, a gets b's writes: the delete is stable at a, F is not.
    a, b, c = Replica("a", RGA), Replica("b", RGA), Replica("c", RGA)
    typed = a.update(lambda s: s.insert(0, "A")) + a.update(lambda s: s.insert(1, "E"))
    b.receive(*typed)
    c.receive(*typed)
    from_b = [op for char in "pqr" for op in b.update(insert_at(0, char))]
    from_b += b.update(lambda s: s.insert(5, "F"))
    deleted = a.update(lambda s: s.delete(1))
    b.receive(*deleted)
    c.receive(*deleted)
    a.receive(*from_b)
    stable = stable_point(a.delivered, {"b": b.delivered, "c": c.delivered})
    assert stable == VersionVector({"a": 3})
    a.compact(stable)
    assert a.state.tombstones == 1, "E must stay: F after it is not stable"
    # c, which never saw F, types x after A: x's id is smaller than F's.
    from_c = c.update(lambda s: s.insert(1, "x"))
    for replica in (a, b, c):
        replica.receive(*typed, *from_b, *deleted, *from_c)
    assert a.value == b.value == c.value == tuple("rqpAxF")


def test_tombstones_go_once_everything_is_stable() -> None:
    a, b = Replica("a", RGA), Replica("b", RGA)
    sent = [op for i, c in enumerate("abcd") for op in a.update(insert_at(i, c))]
    sent += a.update(lambda s: s.delete(1)) + a.update(lambda s: s.delete(1))
    b.receive(*sent)
    stable = stable_point(a.delivered, {"b": b.delivered})
    a.compact(stable)
    b.compact(stable)
    assert a.state == b.state and a.state.tombstones == 0
    assert [element[1] for element in a.state.elements()] == ["a", "d"]


@pytest.fixture
def tiny_leaves(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(rga_tree, "MAX_LEAF", 3)
    monkeypatch.setattr(rga_tree, "MAX_FANOUT", 3)
    monkeypatch.setattr(rga_tree, "SPARSE_FILL", 2)
    yield


def test_inserts_and_compaction_step_over_emptied_leaves(tiny_leaves: None) -> None:
    doc = Replica("a", RGA)
    for index in range(12):
        doc.update(insert_at(index, str(index)))
    assert doc.state._tree.leaves == 4
    for _ in range(3):
        doc.update(lambda s: s.delete(3))  # empties the second leaf
    doc.update(lambda s: s.delete(2))  # a tombstone right before the empty leaf
    doc.compact(doc.delivered)
    check_tree(doc.state._tree)
    assert doc.state._tree.leaves == 4, "the emptied leaf is kept (the tree is not sparse)"
    doc.update(lambda s: s.insert(2, "x"))  # after the end of the first leaf
    doc.update(lambda s: s.delete(1))
    doc.compact(doc.delivered)
    check_tree(doc.state._tree)
    assert doc.state.text == "0x6789" + "1011"


def test_an_insert_whose_anchor_is_unknown_goes_to_the_start() -> None:
    # Inside an ORMap, a remove can discard the element an insert was anchored
    # to; every replica then puts the insert at the start, in id order.
    lone = Tagged(replica_id="a", version={"a": 2}, op=Insert(after=None, value="x"))
    orphan = Tagged(
        replica_id="b",
        version={"a": 1, "b": 1},
        op=Insert(after=ElementId(1, "a", 1), value="y"),
    )
    one = RGA().effect(lone).effect(orphan)
    other = RGA().effect(orphan).effect(lone)
    assert one == other and one.value == ("y", "x")


def test_compaction_shrinks_the_tree_with_the_document() -> None:
    doc = Replica("a", RGA)
    for index in range(2_000):
        doc.update(insert_at(index, "x"))
    assert doc.state._tree.leaves >= 30
    for _ in range(1_990):
        doc.update(lambda s: s.delete(0))
    doc.compact(doc.delivered)
    tree = doc.state._tree
    check_tree(tree)
    # Emptied leaves do not pile up: memory follows the live elements.
    assert tree.count == 10 and tree.leaves <= 2
