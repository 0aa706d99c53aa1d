"""Concurrent versions of a replicated aggregate's state.

When replicas of one aggregate write concurrently, there is no single
"current state": each concurrent branch of the history has its own.
:class:`ConcurrentVersions` folds events into the set of those states.

How an event is applied: its *base* is the newest state in its causal past
(of all states so far with a version at or below the event's version, the
one with the greatest version total, ties broken by replica id; two
different versions with the same total and replica id, which only a local
:meth:`~ConcurrentVersions.resolve` or events out of causal order can make,
are ordered by their sorted entries). The event is applied to the base, and
the result becomes a *leaf*, replacing every leaf in the event's causal
past. So:

* an event that follows the only leaf simply advances it;
* an event concurrent with a leaf branches from their common past, and now
  there are two leaves: ``conflict`` is True and ``all`` lists both;
* an event that follows several leaves (a *resolving* event, written by a
  replica that had seen them all) joins them into one leaf again. Make such
  events carry what they decide (e.g. the merged items), so applying them
  gives the same state whichever leaf is the base.

Because the base of an event depends only on its causal past, replicas
that apply the same events in any causal order hold the same leaves.
:meth:`~ConcurrentVersions.resolve` merges the leaves locally (before
persisting a resolving event), and :meth:`~ConcurrentVersions.compact`
forgets states no future event can branch from once a version is causally
stable.

What is kept. A state dominated by another can still be the base of a
future event (one written by a replica that saw only the older state), so
without a stable point every state folded is kept: memory grows with the
history (:attr:`~ConcurrentVersions.kept` counts the states). A *stable
point* is a version every future event's version dominates
(:func:`~calliope.core.version_vector.stable_vector` of every replica's
latest version is one). A state at or below it that another state at or
below it dominates can never be a base again. ``compact(stable)``, or
``update(envelope, stable=stable)``, drops those states and remembers the
point; from then on a state is dropped as soon as a newer one at or below
the point dominates it, as events arrive and as the point advances. What
is kept is then the states above the stable point (those since the slowest
replica last caught up) and, at or below it, only the ones no other
dominates (at most one per replica): when the stable point keeps up with
the writers, O(branches).

How it is found. The states of events are indexed by (writer, the writer's
counter) in a persistent hash map (``immutables.Map``), so the base of an
event is the newest state (when the event follows it: one writer, or
writers that see each other's events) or else the newest of one lookup per
replica in the event's version: no scan of the history, and no copy of
anything that grows with it (updates share structure with older values,
which stay valid). That relies on what real replicas guarantee: each
replica's events carry its counter, raised by one per event, each event's
version covers everything its writer had seen, and events arrive in
causal order. An event that breaks this (a duplicate, or one that skips
its writer's counter) is still applied exactly as described above, but is
kept aside and costs a scan of the kept states. Each method states its
cost; vector comparisons count as one step (each is O(replicas)), and a
hash-map update as O(log32 kept), at most 7 steps below 34 billion states.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

import attrs
import immutables

from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidArgumentError

__all__ = ["CausalEvent", "ConcurrentVersions", "Versioned"]

S = TypeVar("S")
E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)

_EMPTY = VersionVector()


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


def _newer(node: Versioned[Any], than: Versioned[Any]) -> bool:
    """Whether ``node`` is newer than ``than``: by version total, then replica
    id, then (two different versions with the same total and replica id, as a
    local resolve or events out of causal order can make) by sorted entries."""
    key, other = _key(node), _key(than)
    if key != other:
        return key > other
    version, other_version = node.version, than.version
    return version != other_version and sorted(version.items()) > sorted(other_version.items())


class CausalEvent(Protocol[E_co]):
    """An event with its writer and version (an :class:`Envelope` is one)."""

    @property
    def replica_id(self) -> str: ...

    @property
    def version(self) -> VersionVector: ...

    @property
    def event(self) -> E_co: ...


# The states of events, by (writer, the writer's counter in the version).
_Index = immutables.Map[tuple[str, int], Versioned[S]]


def _drop(index: _Index[S], node: Versioned[S]) -> _Index[S]:
    """``index`` without ``node`` (unchanged if ``node`` is not in it)."""
    key = (node.replica_id, node.version[node.replica_id])
    return index.delete(key) if index.get(key) is node else index


def _admit(
    frontier: tuple[Versioned[S], ...], node: Versioned[S], index: _Index[S]
) -> tuple[tuple[Versioned[S], ...], _Index[S]]:
    """Add ``node``, at or below the stable point, to the frontier (the kept
    states there, none dominating another): drop ``node`` if a frontier state
    dominates it, else drop the frontier states it dominates."""
    version = node.version
    for other in frontier:
        if version < other.version:
            return frontier, _drop(index, node)
    kept: list[Versioned[S]] = []
    for other in frontier:
        if other.version < version:
            index = _drop(index, other)
        else:
            kept.append(other)
    kept.append(node)
    return tuple(kept), index


def _newest_below(
    candidates: Iterable[Versioned[S]], version: VersionVector, best: Versioned[S] | None
) -> Versioned[S] | None:
    """The newest of ``best`` and the ``candidates`` at or below ``version``."""
    for node in candidates:
        if node.version <= version and (best is None or _newer(node, best)):
            best = node
    return best


@attrs.frozen(init=False)
class ConcurrentVersions(Generic[S, E]):
    """The concurrent states of one aggregate, as an immutable value.

    ``ConcurrentVersions(initial, update_state)`` starts with one leaf;
    :meth:`update` folds an envelope (anything with ``replica_id``,
    ``version`` and ``event``) and returns the new value. Old values stay
    valid: updates share structure with them and never change them.
    ``leaves`` is the tuple of concurrent states (in the order they became
    leaves; :attr:`all` sorts them).
    """

    initial: S
    update_state: Callable[[S, E], S]
    leaves: tuple[Versioned[S], ...]
    # The newest kept state (by _newer): the base of an event that follows it.
    _newest: Versioned[S] = attrs.field(repr=False)
    # The kept states of events that follow their writer's previous event.
    _index: _Index[S] = attrs.field(repr=False)
    # Per writer, the first and last counter in the index: every counter
    # between was folded in order (and may since have been dropped).
    _spans: immutables.Map[str, tuple[int, int]] = attrs.field(repr=False)
    # Other kept states above the stable point: joined states from resolve,
    # events out of causal order.
    _aside: tuple[Versioned[S], ...] = attrs.field(repr=False)
    # The kept states that passed below the stable point: none dominates another.
    _frontier: tuple[Versioned[S], ...] = attrs.field(repr=False)
    _stable: VersionVector = attrs.field(repr=False)

    def __init__(self, initial: S, update_state: Callable[[S, E], S]) -> None:
        root: Versioned[S] = Versioned(state=initial, version=_EMPTY)
        self.__attrs_init__(
            initial,
            update_state,
            (root,),
            root,
            immutables.Map(),
            immutables.Map(),
            (),
            (root,),
            _EMPTY,
        )

    def _with(
        self,
        leaves: tuple[Versioned[S], ...],
        newest: Versioned[S],
        index: _Index[S],
        spans: immutables.Map[str, tuple[int, int]],
        aside: tuple[Versioned[S], ...],
        frontier: tuple[Versioned[S], ...],
        stable: VersionVector,
    ) -> ConcurrentVersions[S, E]:
        value: ConcurrentVersions[S, E] = object.__new__(type(self))
        value.__attrs_init__(
            self.initial, self.update_state, leaves, newest, index, spans, aside, frontier, stable
        )
        return value

    @property
    def conflict(self) -> bool:
        """True when there is more than one concurrent state. O(1)."""
        return len(self.leaves) > 1

    @property
    def all(self) -> tuple[Versioned[S], ...]:
        """The concurrent states, in a deterministic order (oldest first).
        O(leaves log leaves)."""
        return tuple(sorted(self.leaves, key=_key))

    @property
    def state(self) -> S:
        """The state, when there is no conflict (else the newest leaf's state;
        check :attr:`conflict` first). O(leaves)."""
        return max(self.leaves, key=_key).state

    @property
    def version(self) -> VersionVector:
        """Everything folded in so far: the merge of the leaves' versions.
        O(leaves) merges."""
        merged = _EMPTY
        for leaf in self.leaves:
            merged = merged.merge(leaf.version)
        return merged

    @property
    def stable(self) -> VersionVector:
        """The stable point given so far (the merge of every one given to
        :meth:`compact` or ``update(..., stable=)``; empty if none). O(1)."""
        return self._stable

    @property
    def kept(self) -> int:
        """How many states are kept (leaves included), to measure memory.
        Without a stable point, one per event folded plus the initial state
        and joined states; with one that keeps up with the writers,
        O(branches). O(states at or below the stable point)."""
        index = self._index
        loose = sum(1 for node in self._frontier if _drop(index, node) is index)
        return len(index) + len(self._aside) + loose

    def update(
        self, envelope: CausalEvent[E], *, stable: VersionVector | None = None
    ) -> ConcurrentVersions[S, E]:
        """Fold one event, delivered in causal order (its past first).

        ``stable``, if given, is a stable point known now: this is
        ``compact(stable).update(envelope)``. Raises
        :class:`~calliope.errors.InvalidArgumentError` if the event's version
        does not dominate the stable point: the point was not stable (or the
        event is a duplicate of one already below it).

        Cost: O(leaves + log32 kept) when the event follows the newest state
        (one writer, or writers that see each other's events; amortised O(1)
        with a stable point that keeps up, as there is then one leaf and a
        bounded number of kept states); otherwise O(replicas in its version
        + leaves + states at or below the stable point + states kept aside +
        log32 kept); O(kept) for an event out of causal order. Plus, at the
        stable point, O(states at or below it); plus :meth:`compact`'s cost
        if ``stable`` advances.
        """
        versions = self if stable is None else self.compact(stable)
        return versions._fold(envelope)

    def update_all(
        self, envelopes: Iterable[CausalEvent[E]], *, stable: VersionVector | None = None
    ) -> ConcurrentVersions[S, E]:
        """Fold several events in (causal) order; ``stable``, if given, must
        be dominated by every one of them (see :meth:`update`). The cost is
        the sum of :meth:`update`'s."""
        result = self if stable is None else self.compact(stable)
        for envelope in envelopes:
            result = result._fold(envelope)
        return result

    def _fold(self, envelope: CausalEvent[E]) -> ConcurrentVersions[S, E]:
        version = envelope.version
        replica = envelope.replica_id
        stable = self._stable
        if stable and not stable <= version:
            raise InvalidArgumentError(
                f"event from {replica!r} at {version} does not follow the stable point "
                f"{stable}: that point was not stable, or the event is a duplicate"
            )
        index, spans = self._index, self._spans
        counter = version[replica]
        span = spans.get(replica)
        newest = self._newest
        follows = newest.version <= version  # the common case: its base is the newest state
        # In order: the writer's next event, following its previous one.
        in_order = counter > 0 and (span is None or counter == span[1] + 1)
        if in_order and span is not None:
            previous = index.get((replica, counter - 1))
            if previous is not None:  # (their versions differ at ``replica``)
                in_order = follows if previous is newest else previous.version <= version
        aside = self._aside
        if in_order and aside:
            # A copy of an event kept aside stays aside, after the first copy.
            in_order = not any(node.version == version for node in aside)
        if follows:
            base = newest
        else:
            found = self._lookup_base(version, replica) if in_order else None
            base = self._scan_base(version) if found is None else found
        node = Versioned(
            state=self.update_state(base.state, envelope.event),
            version=version,
            replica_id=replica,
        )
        if in_order:
            index = index.set((replica, counter), node)
            spans = spans.set(replica, (counter if span is None else span[0], counter))
        frontier = self._frontier
        if stable and version.total == stable.total:  # at the stable point (it is below)
            frontier, index = _admit(frontier, node, index)
        elif not in_order:
            aside = (*aside, node)
        leaves = self.leaves
        if follows and len(leaves) == 1:
            leaves = (node,)  # the only leaf is the newest state, below this one
        else:
            leaves = (*(leaf for leaf in leaves if not leaf.version <= version), node)
        if _newer(node, newest):
            newest = node
        return self._with(leaves, newest, index, spans, aside, frontier, stable)

    def _lookup_base(self, version: VersionVector, replica: str) -> Versioned[S] | None:
        """The base of an in-order event from ``replica`` at ``version``: the
        newest of, per replica, the state of its last event that ``version``
        has seen, the states at the stable point and the states kept aside.
        None if the versions contradict each other (then scan)."""
        best: Versioned[S] | None = None
        index, spans = self._index, self._spans
        for writer, counter in version.items():
            span = spans.get(writer)
            if span is None:
                continue
            seen = min(counter - 1 if writer == replica else counter, span[1])
            if seen < span[0]:
                continue
            node = index.get((writer, seen))
            if node is None:  # dropped: dominated by a state at the stable point
                continue
            if not node.version <= version:
                return None
            if best is None or _newer(node, best):
                best = node
        return _newest_below(self._aside, version, _newest_below(self._frontier, version, best))

    def _scan_base(self, version: VersionVector) -> Versioned[S]:
        best = _newest_below(self._index.values(), version, None)
        best = _newest_below(self._frontier, version, _newest_below(self._aside, version, best))
        if best is None:  # unreachable: the event dominates the stable point
            raise InvalidArgumentError(f"no state at or below {version}")
        return best

    def resolve(self, merge: Callable[[list[S]], S]) -> ConcurrentVersions[S, E]:
        """Join the leaves into one, whose state is ``merge`` of their states
        (oldest first) and whose version covers them all. Local only: persist
        an event that says what was decided so other replicas agree.

        O(leaves log leaves) plus ``merge``. The joined state is kept aside
        (each later update scans it) until it is at or below the stable point.
        """
        if not self.conflict:
            return self
        leaves = self.all
        joined = Versioned(
            state=merge([leaf.state for leaf in leaves]),
            version=self.version,
            replica_id=max(leaves, key=_key).replica_id,
        )
        index, aside, frontier = self._index, self._aside, self._frontier
        if self._stable and joined.version <= self._stable:
            frontier, index = _admit(frontier, joined, index)
        else:
            aside = (*aside, joined)
        newest = joined if _newer(joined, self._newest) else self._newest
        return self._with((joined,), newest, index, self._spans, aside, frontier, self._stable)

    def compact(self, stable: VersionVector) -> ConcurrentVersions[S, E]:
        """Forget states no future event can be based on, and remember
        ``stable`` so that later updates keep forgetting them.

        Once ``stable`` is causally stable (every replica has seen it), every
        future event's version dominates it, so a state at or below it that
        another state at or below it dominates can never be a base again.
        Stable points only grow: the one remembered is the merge of all given.

        O(1) if ``stable`` is at or below the remembered point; else
        O(replicas + states kept aside), plus O(states at or below the point)
        for each state that passes below it. A state passes below once, so
        over a fold that is amortised per event.
        """
        old = self._stable
        merged = old.merge(stable)
        if merged is old or merged == old:
            return self
        index, frontier = self._index, self._frontier
        spans = self._spans
        for writer, counter in merged.items():
            span = spans.get(writer)
            if span is None:
                continue
            first, last = span
            # States of this writer that were above the old point, now below.
            for seen in range(max(min(old[writer], last) + 1, first), min(counter, last) + 1):
                node = index.get((writer, seen))
                if node is not None and node.version <= merged:
                    frontier, index = _admit(frontier, node, index)
        aside: list[Versioned[S]] = []
        for node in self._aside:
            if node.version <= merged:
                frontier, index = _admit(frontier, node, index)
            else:
                aside.append(node)
        return self._with(self.leaves, self._newest, index, spans, tuple(aside), frontier, merged)
