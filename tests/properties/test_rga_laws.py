"""The RGA's B-tree, with tiny nodes so that short histories split and rebuild it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calliope.core.crdt import RGA, ORMap, Tagged, rga_tree
from calliope.core.version_vector import VersionVector
from calliope.testing import check_crdt
from calliope.testing.crdt_specs import BUILTIN_SPECS, DeleteAt, InsertAt, rga_model


@pytest.fixture
def tiny_nodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(rga_tree, "MAX_LEAF", 3)
    monkeypatch.setattr(rga_tree, "MAX_FANOUT", 3)
    monkeypatch.setattr(rga_tree, "BUILD_LEAF", 2)
    monkeypatch.setattr(rga_tree, "BUILD_FANOUT", 2)
    monkeypatch.setattr(rga_tree, "SPARSE_FILL", 2)
    yield


def check_tree(tree: rga_tree.Tree) -> None:
    """Every index the tree keeps agrees with its nodes."""
    seen: list[Any] = []
    leaves = 0

    def walk(node: Any, parent_uid: int | None) -> int:
        nonlocal leaves
        if parent_uid is not None:
            assert tree.parent[node.uid] == parent_uid
        if isinstance(node, rga_tree._Leaf):
            leaves += 1
            assert node.ids == tuple(element[0] for element in node.elements)
            for element in node.elements:
                assert tree.leaf_of[element[0]] == node.uid
                seen.append(element[0])
            visible = sum(1 for element in node.elements if element[2] is None)
        else:
            assert 1 <= len(node.children) <= rga_tree.MAX_FANOUT
            counts = tuple(walk(child, node.uid) for child in node.children)
            assert counts == node.visibles
            visible = sum(counts)
        assert visible == node.visible
        return visible

    walk(tree.root, None)
    assert tree.root.uid not in tree.parent
    assert len(seen) == len(set(seen)) == tree.count == len(tree.leaf_of)
    assert leaves == tree.leaves


def test_rga_obeys_the_laws_with_tiny_nodes(tiny_nodes: None) -> None:
    spec = BUILTIN_SPECS[RGA]
    check_crdt(RGA, spec.operations, model=spec.model)


def test_ormap_of_rga_obeys_the_laws_with_tiny_nodes(tiny_nodes: None) -> None:
    spec = BUILTIN_SPECS[ORMap]
    check_crdt(ORMap, spec.operations, model=spec.model)


steps = st.lists(
    st.one_of(
        st.builds(InsertAt, st.integers(0, 200), st.sampled_from("abc")),
        st.builds(InsertAt, st.just(10_000), st.sampled_from("abc")),  # typing at the end
        st.builds(DeleteAt, st.integers(0, 200)),
        st.just("compact"),
    ),
    max_size=120,
)


@settings(max_examples=60)
@given(steps)
def test_a_long_single_writer_history_matches_the_reference(steps: list[Any]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name, size in [("MAX_LEAF", 3), ("MAX_FANOUT", 3), ("SPARSE_FILL", 2)]:
            patch.setattr(rga_tree, name, size)
        state = RGA()
        history: list[Tagged[Any]] = []
        version = VersionVector()
        for step in steps:
            if step == "compact":
                state = state.compact(version)
                # Everything is stable with one writer: no tombstone survives.
                assert state.tombstones == 0
            elif isinstance(step, DeleteAt) and not len(state):
                continue
            else:
                version = version.increment("w")
                tagged = Tagged(replica_id="w", version=version, op=step(state))
                history.append(tagged)
                state = state.effect(tagged)
            check_tree(state._tree)
            assert state.value == rga_model(history)
            assert len(state) == len(state.value)
            assert [state[index] for index in range(len(state))] == list(state.value)
