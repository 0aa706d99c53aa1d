"""Causal stability: when an operation can no longer be concurrent with anything.

An operation is *causally stable* at a replica when two things hold:

1. every replica has delivered it, and
2. every operation this replica will deliver from now on has it in its causal
   past (nothing concurrent with it is still on its way here).

Once an operation is stable its metadata can go: a removed element's
tombstone can no longer be the anchor of a concurrent insert, an add's dot can
no longer be missed by a concurrent remove, an entry of a map's operation log
can no longer be revived by a concurrent update. ``state.compact(stable)``
drops exactly that, for every operation at or below the vector ``stable``,
and never changes ``state.value``.

**What ``stable`` must be.** Condition 1 alone is the meet of every replica's
delivered vector (:func:`~calliope.core.stable_vector`), but it does not imply
condition 2: replica B may have written an operation *before* it delivered
operation ``a``, then delivered ``a`` and said so, while its earlier operation,
concurrent with ``a``, is still travelling to us. A replica therefore counts
another replica's reported delivered vector ``D`` only once it has itself
delivered that replica's own operations up to ``D`` (``D[B] <= delivered[B]``):
from then on, whatever B sends was written after B had delivered ``D``, so its
version is at least ``D``. Its own future operations are at least its own
delivered vector. The meet of those vectors satisfies both conditions;
:func:`stable_point` computes it and refuses a report that is not usable yet
(keep using that replica's previous report until you catch up).

Stability assumes the set of replicas is known: a replica nobody has heard
of may still send operations concurrent with anything.
"""

from __future__ import annotations

from collections.abc import Mapping

from calliope.core.envelope import Dot
from calliope.core.version_vector import VersionVector, stable_vector
from calliope.errors import InvalidArgumentError

__all__ = ["is_stable", "stable_point"]


def is_stable(dot: Dot, stable: VersionVector) -> bool:
    """True when the operation with ``dot`` is at or below the stable vector."""
    return dot[1] <= stable[dot[0]]


def stable_point(delivered: VersionVector, reports: Mapping[str, VersionVector]) -> VersionVector:
    """The causally stable vector at a replica, for ``compact``.

    ``delivered`` is this replica's delivered vector; ``reports`` maps every
    other known replica id to the delivered vector it last reported. Each
    report must be *usable*: this replica has delivered the reporting
    replica's own operations up to the report (``report[r] <= delivered[r]``).
    Raises :class:`~calliope.errors.InvalidArgumentError` otherwise.
    """
    for replica, report in reports.items():
        if report[replica] > delivered[replica]:
            raise InvalidArgumentError(
                f"the report of replica {replica!r} ({report!r}) counts operations of "
                f"{replica!r} this replica has not delivered yet ({delivered!r}); "
                f"keep using {replica!r}'s previous report until they are delivered"
            )
    return stable_vector([delivered, *reports.values()])
