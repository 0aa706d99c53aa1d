"""What the replicator decides from replicas' progress reports, purely.

Every replica of a replicator key reports what it has applied (its
*delivered* vector) and beats a heartbeat. From those the replicator
decides three things, here, without I/O:

* **acknowledgements** (:func:`acknowledgements`): how many replicas have
  applied an operation, for ``update(..., replicas=n)``;
* **read floors** (:func:`read_floor`): what at least ``n`` replicas have
  applied, for ``get(..., replicas=n)``: per origin replica, the ``n``-th
  highest count among the vectors (each delivered vector holds a prefix of
  every origin's operations, so the ``n``-th highest count is exactly the
  prefix that at least ``n`` replicas hold);
* **which reports hold back stability** (:func:`stability_reports`), for
  :func:`calliope.core.crdt.stable_point`.

A replica is *live* (:func:`is_live`) while its heartbeat is running and
younger than the failure timeout. A replica that is not live stops holding
back stability once this replica has applied its whole log: it writes
nothing until it returns, and a returning replica catches up with the store
before it writes again, so it can no longer send anything concurrent with
what is stable. Until then its last usable report is kept.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from calliope.core.envelope import Dot
from calliope.core.version_vector import VersionVector
from calliope.errors import InvalidArgumentError

__all__ = ["acknowledgements", "is_live", "read_floor", "stability_reports"]


def is_live(running: bool, beat_us: int, now_us: int, failure_timeout_us: int) -> bool:
    """A heartbeat ``beat_us`` says its replica is live at ``now_us``."""
    return running and now_us - beat_us <= failure_timeout_us


def acknowledgements(dot: Dot, vectors: Iterable[Mapping[str, int]]) -> int:
    """How many of the delivered ``vectors`` include the operation ``dot``.
    O(len(vectors))."""
    replica, counter = dot
    return sum(1 for vector in vectors if vector.get(replica, 0) >= counter)


def read_floor(vectors: Sequence[Mapping[str, int]], n: int) -> dict[str, int]:
    """Per origin replica, the ``n``-th highest count among ``vectors``
    (entries below it are left out): every operation at or below the result
    was applied by at least ``n`` of them, and nothing above it was.
    O(len(vectors) * origins)."""
    if n < 1:
        raise InvalidArgumentError(f"n must be at least 1, got {n}")
    if n > len(vectors):
        return {}
    counts: dict[str, list[int]] = {}
    for vector in vectors:
        for replica, counter in vector.items():
            counts.setdefault(replica, []).append(counter)
    floor = {}
    for replica, values in counts.items():
        if len(values) >= n:
            values.sort(reverse=True)
            if values[n - 1] > 0:
                floor[replica] = values[n - 1]
    return floor


def stability_reports(
    delivered: VersionVector,
    own: str,
    reports: Mapping[str, VersionVector],
    previous: Mapping[str, VersionVector],
    *,
    live: Collection[str],
    log_ends: Mapping[str, int],
) -> tuple[dict[str, VersionVector], dict[str, VersionVector]]:
    """The reports to pass to ``stable_point``, and the usable reports to keep.

    * ``reports``: each other replica's newest report; ``previous``: its last
      *usable* one (what this returned as second value last time).
    * ``live``: the replicas whose heartbeat is live; ``log_ends``: the last
      sequence of each replica's log of the key.

    Every replica known by a log or a report counts, this one excepted, with
    its newest usable report (one whose own entry this replica has
    delivered), else its previous usable one, else an empty vector (it holds
    everything back). A replica that is not live and whose whole log this
    replica has delivered is left out. O(replicas * origins).
    """
    chosen: dict[str, VersionVector] = {}
    usable: dict[str, VersionVector] = {}
    for replica in sorted({*reports, *log_ends} - {own}):
        report = reports.get(replica)
        if report is not None and report[replica] <= delivered[replica]:
            usable[replica] = report
        elif replica in previous:
            usable[replica] = previous[replica]
        if replica not in live and log_ends.get(replica, 0) <= delivered[replica]:
            continue
        chosen[replica] = usable.get(replica, VersionVector())
    return chosen, usable
