"""Operation strategies and models (specifications) for the built-in CRDTs.

Each model computes, from the operations a replica delivered (tagged, in a
causal order), the value the replica must show, written as directly as the
semantics in the type's docstring: "present iff some add is not in the
causal past of a remove", and so on. The RGA's model is a plain list
implementation of the same algorithm, a reference for the B-tree one.
:data:`BUILTIN_SPECS` pairs each type with a strategy of prepare steps and
its model; use them to check a composite of built-ins, or as examples.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs
from hypothesis import strategies as st

from calliope.core.causal_order import causal_sort_key
from calliope.core.crdt import (
    RGA,
    Add,
    Decrement,
    Delete,
    Enable,
    Flag,
    GCounter,
    GSet,
    Increment,
    Insert,
    LWWRegister,
    LWWSet,
    MVRegister,
    MVSet,
    ORMap,
    ORSet,
    PNCounter,
    Remove,
    RemoveKey,
    Tagged,
    Update,
    covers,
    crdt_name,
)
from calliope.core.crdt.lww_register import _key as timestamp_key
from calliope.core.crdt.rga import element_id
from calliope.errors import InvalidOperationError
from calliope.testing.crdt_simulation import Model, Prepare, call

__all__ = [
    "BUILTIN_SPECS",
    "CRDTSpec",
    "DeleteAt",
    "InsertAt",
    "rga_model",
]

History = Sequence[Tagged[Any]]


@attrs.frozen
class CRDTSpec:
    """Prepare steps to draw from, and the value they must lead to."""

    operations: st.SearchStrategy[Prepare]
    model: Model


@attrs.frozen
class InsertAt:
    """Prepare ``rga.insert(position mod (len + 1), value)``: always in range."""

    position: int
    value: Any

    def __call__(self, rga: RGA) -> object:
        return rga.insert(self.position % (len(rga) + 1), self.value)

    def __repr__(self) -> str:
        return f"insert({self.position} mod (len+1), {self.value!r})"


@attrs.frozen
class DeleteAt:
    """Prepare ``rga.delete(position mod len)``; refused when the sequence is empty."""

    position: int

    def __call__(self, rga: RGA) -> object:
        if not len(rga):
            raise InvalidOperationError("nothing to delete in an empty sequence")
        return rga.delete(self.position % len(rga))

    def __repr__(self) -> str:
        return f"delete({self.position} mod len)"


def _ops(history: History, kind: type) -> list[Tagged[Any]]:
    return [tagged for tagged in history if isinstance(tagged.op, kind)]


def gcounter_model(history: History) -> int:
    return int(sum(tagged.op.n for tagged in _ops(history, Increment)))


def pncounter_model(history: History) -> int:
    return gcounter_model(history) - int(sum(tagged.op.n for tagged in _ops(history, Decrement)))


def gset_model(history: History) -> frozenset[Any]:
    return frozenset(tagged.op.element for tagged in _ops(history, Add))


def orset_model(history: History) -> frozenset[Any]:
    removes = _ops(history, Remove)
    return frozenset(
        add.op.element
        for add in _ops(history, Add)
        if not any(
            remove.op.element == add.op.element and covers(remove.version, add.dot)
            for remove in removes
        )
    )


def flag_model(history: History) -> bool:
    # On iff some enable is in the causal past of no later write that turned
    # the flag off: a disable, which sees it.
    disables = [tagged for tagged in history if not isinstance(tagged.op, Enable)]
    return any(
        not any(covers(disable.version, enable.dot) for disable in disables)
        for enable in _ops(history, Enable)
    )


def mvregister_model(history: History) -> frozenset[Any]:
    writes = _ops(history, MVSet)
    return frozenset(
        write.op.value
        for write in writes
        if not any(other is not write and covers(other.version, write.dot) for other in writes)
    )


def lwwregister_model(history: History) -> Any:
    writes = _ops(history, LWWSet)
    if not writes:
        return None
    winner = max(
        writes,
        key=lambda w: (timestamp_key(w.op.timestamp), w.replica_id, w.version[w.replica_id]),
    )
    return winner.op.value


def rga_model(history: History) -> tuple[Any, ...]:
    """A plain-list RGA: the same algorithm, O(n) per operation, for reference."""
    items: list[list[Any]] = []  # [id, value, deleted]
    for tagged in history:
        op = tagged.op
        if isinstance(op, Insert):
            identity = element_id(tagged)
            ids = [item[0] for item in items]
            position = ids.index(op.after) + 1 if op.after in ids else 0
            while position < len(items) and items[position][0] > identity:
                position += 1
            items.insert(position, [identity, op.value, False])
        elif isinstance(op, Delete):
            for item in items:
                if item[0] == op.target:
                    item[2] = True
    return tuple(item[1] for item in items if not item[2])


def ormap_model(history: History) -> Mapping[Any, Any]:
    removes = _ops(history, RemoveKey)
    survivors: dict[Any, dict[type, list[Tagged[Any]]]] = {}
    for tagged in sorted(_ops(history, Update), key=causal_sort_key):
        op = tagged.op
        if any(
            remove.op.key == op.key and covers(remove.version, tagged.dot) for remove in removes
        ):
            continue
        nested = attrs.evolve(tagged, op=op.op)
        survivors.setdefault(op.key, {}).setdefault(op.crdt_type, []).append(nested)
    value = {}
    for key, by_type in survivors.items():
        crdt_type = min(by_type, key=crdt_name)
        state = crdt_type()
        for nested in by_type[crdt_type]:
            state = state.effect(nested)
        value[key] = state.value
    return MappingProxyType(value)


_elements = st.sampled_from(["a", "b", 1])
_small = st.integers(min_value=0, max_value=4)
_timestamps = st.one_of(
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3).map(
        lambda n: datetime.datetime(2026, 1, 1, n, tzinfo=datetime.UTC)
    ),
)
_rga_ops: st.SearchStrategy[Prepare] = st.one_of(
    st.builds(InsertAt, st.integers(min_value=0, max_value=20), st.sampled_from("xyz")),
    st.builds(InsertAt, st.integers(min_value=0, max_value=20), st.sampled_from("xyz")),
    st.builds(DeleteAt, st.integers(min_value=0, max_value=20)),
)
_keys = st.sampled_from(["k", "j"])


def _nested(crdt_type: type, prepare: st.SearchStrategy[Prepare]) -> st.SearchStrategy[Prepare]:
    return st.builds(lambda key, step: call("update", key, crdt_type, step), _keys, prepare)


BUILTIN_SPECS: Mapping[type, CRDTSpec] = {
    GCounter: CRDTSpec(st.builds(call, st.just("increment"), _small), gcounter_model),
    PNCounter: CRDTSpec(
        st.builds(call, st.sampled_from(["increment", "decrement"]), _small), pncounter_model
    ),
    GSet: CRDTSpec(st.builds(call, st.just("add"), _elements), gset_model),
    ORSet: CRDTSpec(
        st.builds(call, st.sampled_from(["add", "add", "remove"]), _elements), orset_model
    ),
    LWWRegister: CRDTSpec(
        st.builds(call, st.just("set"), st.sampled_from("xyz"), _timestamps), lwwregister_model
    ),
    MVRegister: CRDTSpec(st.builds(call, st.just("set"), st.sampled_from("xyz")), mvregister_model),
    Flag: CRDTSpec(st.builds(call, st.sampled_from(["enable", "disable"])), flag_model),
    RGA: CRDTSpec(_rga_ops, rga_model),
    ORMap: CRDTSpec(
        st.one_of(
            _nested(GCounter, st.builds(call, st.just("increment"), _small)),
            _nested(ORSet, st.builds(call, st.sampled_from(["add", "remove"]), _elements)),
            _nested(RGA, _rga_ops),
            _nested(MVRegister, st.builds(call, st.just("set"), st.sampled_from("xyz"))),
            st.builds(call, st.just("remove"), _keys),
        ),
        ormap_model,
    ),
}
"""For each built-in CRDT: a strategy of prepare steps and the model of its value."""
