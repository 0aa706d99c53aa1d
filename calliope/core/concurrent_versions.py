"""Concurrent versions of a replicated aggregate's state.

When replicas of one aggregate write concurrently, there is no single
"current state": each concurrent branch of the history has its own.
:class:`ConcurrentVersions` folds events into the set of those states.

How an event is applied: its *base* is the newest state in its causal past
(of all states so far with a version at or below the event's version, the
one with the greatest version total, ties broken by replica id). The event
is applied to the base, and the result becomes a *leaf*, replacing every
leaf in the event's causal past. So:

* an event that follows the only leaf simply advances it;
* an event concurrent with a leaf branches from their common past, and now
  there are two leaves: ``conflict`` is True and ``all`` lists both;
* an event that follows several leaves (a *resolving* event, written by a
  replica that had seen them all) joins them into one leaf again. Make such
  events carry what they decide (e.g. the merged items), so applying them
  gives the same state whichever leaf is the base.

Because the base of an event depends only on its causal past, replicas
that apply the same events in any causal order hold the same leaves.
:meth:`resolve` merges the leaves locally (before persisting a resolving
event), and :meth:`compact` forgets states no future event can branch from
once a version is causally stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

import attrs

from calliope.core.version_vector import VersionVector

__all__ = ["CausalEvent", "ConcurrentVersions", "Versioned"]

S = TypeVar("S")
E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)


@attrs.frozen(kw_only=True)
class Versioned(Generic[S]):
    """A state and the version of the last event folded into it.

    ``replica_id`` names the writer of that event ("" for the initial state).
    """

    state: S
    version: VersionVector
    replica_id: str = ""


def _key(node: Versioned[Any]) -> tuple[int, str]:
    return (node.version.total, node.replica_id)


class CausalEvent(Protocol[E_co]):
    """An event with its writer and version (an :class:`Envelope` is one)."""

    @property
    def replica_id(self) -> str: ...

    @property
    def version(self) -> VersionVector: ...

    @property
    def event(self) -> E_co: ...


def _root(self: ConcurrentVersions[Any, Any]) -> tuple[Versioned[Any], ...]:
    return (Versioned(state=self.initial, version=VersionVector()),)


@attrs.frozen
class ConcurrentVersions(Generic[S, E]):
    """The concurrent states of one aggregate, as an immutable value.

    ``ConcurrentVersions(initial, update_state)`` starts with one leaf;
    :meth:`update` folds an envelope (anything with ``replica_id``,
    ``version`` and ``event``) and returns the new value.
    """

    initial: S
    update_state: Callable[[S, E], S]
    nodes: tuple[Versioned[S], ...] = attrs.field(
        default=attrs.Factory(_root, takes_self=True), repr=False
    )
    leaves: tuple[Versioned[S], ...] = attrs.field(
        default=attrs.Factory(lambda self: self.nodes, takes_self=True)
    )

    @property
    def conflict(self) -> bool:
        """True when there is more than one concurrent state."""
        return len(self.leaves) > 1

    @property
    def all(self) -> tuple[Versioned[S], ...]:
        """The concurrent states, in a deterministic order (oldest first)."""
        return tuple(sorted(self.leaves, key=_key))

    @property
    def state(self) -> S:
        """The state, when there is no conflict (else the newest leaf's state;
        check :attr:`conflict` first)."""
        return max(self.leaves, key=_key).state

    @property
    def version(self) -> VersionVector:
        """Everything folded in so far: the merge of the leaves' versions."""
        merged = VersionVector()
        for leaf in self.leaves:
            merged = merged.merge(leaf.version)
        return merged

    def update(self, envelope: CausalEvent[E]) -> ConcurrentVersions[S, E]:
        """Fold one event, delivered in causal order (its past first)."""
        version = envelope.version
        past = [node for node in self.nodes if node.version <= version]
        base = max(past, key=_key)
        node = Versioned(
            state=self.update_state(base.state, envelope.event),
            version=version,
            replica_id=envelope.replica_id,
        )
        leaves = tuple(leaf for leaf in self.leaves if not leaf.version <= version)
        return attrs.evolve(self, nodes=(*self.nodes, node), leaves=(*leaves, node))

    def update_all(self, envelopes: Iterable[CausalEvent[E]]) -> ConcurrentVersions[S, E]:
        """Fold several events in (causal) order."""
        result = self
        for envelope in envelopes:
            result = result.update(envelope)
        return result

    def resolve(self, merge: Callable[[list[S]], S]) -> ConcurrentVersions[S, E]:
        """Join the leaves into one, whose state is ``merge`` of their states
        (oldest first) and whose version covers them all. Local only: persist
        an event that says what was decided so other replicas agree."""
        if not self.conflict:
            return self
        leaves = self.all
        joined = Versioned(
            state=merge([leaf.state for leaf in leaves]),
            version=self.version,
            replica_id=max(leaves, key=_key).replica_id,
        )
        return attrs.evolve(self, nodes=(*self.nodes, joined), leaves=(joined,))

    def compact(self, stable: VersionVector) -> ConcurrentVersions[S, E]:
        """Forget states no future event can be based on.

        Once ``stable`` is causally stable (every replica has seen it), every
        future event's version dominates it, so a state at or below it that
        another state at or below it dominates can never be a base again.
        """
        below = [node for node in self.nodes if node.version <= stable]
        keep = [
            node
            for node in self.nodes
            if not node.version <= stable
            or node in self.leaves
            or not any(node.version < other.version for other in below)
        ]
        return attrs.evolve(self, nodes=tuple(keep))
