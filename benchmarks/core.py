"""Core benchmark: causal delivery and version-vector operations.

Run: ``.venv/bin/python -m benchmarks.core`` (or ``make bench``).

* Delivery: 1,000,000 envelopes from 10 replicas that emit and now and then
  learn another replica's version; they arrive shuffled within windows of
  1,024, so many must be buffered before their causal past arrives. The
  baseline is the bare bookkeeping a delivery needs per envelope on a
  plain dict (read the dot, raise the counter), with no buffering.
* compare/merge of 10-replica vectors, beside the same pointwise loop
  written over plain dicts.
* ConcurrentVersions: 8,000 and 80,000 events from one writer, and 8,000
  from 3 replicas that learn each other's versions only now and then (so
  they branch), folded with ``update_all``, then with ``update(e, stable=)``
  given the meet of the replicas' versions as each event is written. The
  baseline is ``functools.reduce`` of the same update function over the
  bare events. Best of 3 runs each.
"""

from __future__ import annotations

import datetime
import functools
import random
import time
from collections.abc import Callable
from typing import TypeVar

from benchmarks.report import header, rate, row
from calliope.core.causal_delivery import CausalBuffer, receive
from calliope.core.concurrent_versions import ConcurrentVersions
from calliope.core.envelope import Envelope
from calliope.core.version_vector import VersionVector, stable_vector

REPLICAS = [f"replica-{index}" for index in range(10)]
TOTAL = 1_000_000
CHUNK = 50_000
WINDOW = 1_024
STAMP = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T = TypeVar("T")


def history_chunk(
    rng: random.Random, versions: list[VersionVector], count: int
) -> list[Envelope[int]]:
    """``count`` more envelopes in generation (causal) order."""
    out: list[Envelope[int]] = []
    for index in range(count):
        writer = rng.randrange(len(REPLICAS))
        if rng.random() < 0.2:
            versions[writer] = versions[writer].merge(versions[rng.randrange(len(REPLICAS))])
        version = versions[writer].increment(REPLICAS[writer])
        versions[writer] = version
        out.append(bench_envelope(REPLICAS[writer], version, index))
    return out


def bench_envelope(replica: str, version: VersionVector, event: int) -> Envelope[int]:
    """The envelope of event ``event`` written by ``replica`` at ``version``."""
    return Envelope(
        stream_id="bench",
        replica_id=replica,
        sequence=version[replica],
        version=version,
        timestamp=STAMP,
        event=event,
    )


def shuffled_in_windows(rng: random.Random, items: list[Envelope[int]]) -> list[Envelope[int]]:
    out: list[Envelope[int]] = []
    for start in range(0, len(items), WINDOW):
        window = items[start : start + WINDOW]
        rng.shuffle(window)
        out.extend(window)
    return out


def bench_delivery() -> None:
    rng = random.Random(7)
    versions = [VersionVector() for _ in REPLICAS]
    buffer: CausalBuffer[Envelope[int]] = CausalBuffer()
    delivered = 0
    calliope_seconds = 0.0
    baseline_seconds = 0.0
    max_pending = 0
    for _ in range(TOTAL // CHUNK):
        arrivals = shuffled_in_windows(rng, history_chunk(rng, versions, CHUNK))
        start = time.perf_counter()
        for envelope in arrivals:
            buffer, released = receive(buffer, envelope)
            delivered += len(released)
        calliope_seconds += time.perf_counter() - start
        max_pending = max(max_pending, buffer.pending)
        counts: dict[str, int] = {}
        start = time.perf_counter()
        for envelope in arrivals:
            replica = envelope.replica_id
            counter = envelope.version[replica]
            if counter > counts.get(replica, 0):
                counts[replica] = counter
        baseline_seconds += time.perf_counter() - start
    assert delivered == TOTAL and buffer.pending == 0, (delivered, buffer.pending)
    header(f"causal delivery: {TOTAL:,} envelopes, 10 replicas, shuffled in windows of {WINDOW}")
    print(
        row(
            "receive() envelopes/s",
            rate(TOTAL, calliope_seconds),
            "env/s",
            rate(TOTAL, baseline_seconds),
            "dict bookkeeping, no buffer",
        )
    )
    print(f"  pending at chunk ends (max): {max_pending}")


def raw_compare(a: dict[str, int], b: dict[str, int]) -> tuple[bool, bool]:
    """The bare pointwise comparison of two dicts with the same keys."""
    less = greater = False
    for key, value in a.items():
        other = b.get(key, 0)
        if value < other:
            less = True
        elif value > other:
            greater = True
    return less, greater


def bench_vectors() -> None:
    rng = random.Random(11)
    pairs = []
    for _ in range(1_000):
        a = {r: rng.randrange(1, 1_000) for r in REPLICAS}
        b = {r: rng.randrange(1, 1_000) for r in REPLICAS}
        pairs.append((a, b))
    vector_pairs = [(VersionVector(a), VersionVector(b)) for a, b in pairs]
    rounds = 200
    count = rounds * len(pairs)

    start = time.perf_counter()
    for _ in range(rounds):
        for va, vb in vector_pairs:
            va.compare(vb)
    compare_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(rounds):
        for a, b in pairs:
            raw_compare(a, b)
    raw_compare_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for _ in range(rounds):
        for va, vb in vector_pairs:
            va.merge(vb)
    merge_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(rounds):
        for a, b in pairs:
            merged = dict(a)
            for key, value in b.items():
                if value > merged.get(key, 0):
                    merged[key] = value
    raw_merge_seconds = time.perf_counter() - start

    header("version vectors: 10 replicas")
    print(
        row(
            "compare() ops/s",
            rate(count, compare_seconds),
            "ops/s",
            rate(count, raw_compare_seconds),
            "pointwise loop on dicts",
        )
    )
    print(
        row(
            "merge() ops/s",
            rate(count, merge_seconds),
            "ops/s",
            rate(count, raw_merge_seconds),
            "pointwise max on dicts",
        )
    )


def add(total: int, event: int) -> int:
    """The update function folded: as cheap as one can be, so the figures
    show ConcurrentVersions' own cost per event."""
    return total + event


def writer_history(
    replicas: list[str], count: int, learn: float, rng: random.Random
) -> tuple[list[Envelope[int]], list[VersionVector]]:
    """``count`` envelopes in generation (causal) order, each writer learning
    another's version with probability ``learn`` before it writes; and beside
    each, a stable point: the meet of every replica's version once it is
    written (so it and every later event dominate it)."""
    versions = [VersionVector() for _ in replicas]
    envelopes: list[Envelope[int]] = []
    stables: list[VersionVector] = []
    for index in range(count):
        writer = rng.randrange(len(replicas))
        if len(replicas) > 1 and rng.random() < learn:
            versions[writer] = versions[writer].merge(versions[rng.randrange(len(replicas))])
        replica = replicas[writer]
        version = versions[writer].increment(replica)
        versions[writer] = version
        envelopes.append(bench_envelope(replica, version, index))
        stables.append(stable_vector(versions))
    return envelopes, stables


def best_of(runs: int, action: Callable[[], T]) -> tuple[float, T]:
    """The shortest of ``runs`` timings of ``action()``, and its result."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def fold_with_stable_points(
    envelopes: list[Envelope[int]], stables: list[VersionVector]
) -> ConcurrentVersions[int, int]:
    """Fold, giving each event's stable point."""
    versions = ConcurrentVersions(0, add)
    for envelope, stable in zip(envelopes, stables, strict=True):
        versions = versions.update(envelope, stable=stable)
    return versions


def most_kept(envelopes: list[Envelope[int]], stables: list[VersionVector]) -> int:
    """The most states kept during that fold (untimed)."""
    versions = ConcurrentVersions(0, add)
    most = 0
    for envelope, stable in zip(envelopes, stables, strict=True):
        versions = versions.update(envelope, stable=stable)
        most = max(most, versions.kept)
    return most


def bench_concurrent_versions() -> None:
    header("ConcurrentVersions: events folded into concurrent states (best of 3)")
    cases = [
        ("1 writer", 8_000, ["a"], 0.0),
        ("1 writer", 80_000, ["a"], 0.0),
        ("3 replicas, branching", 8_000, ["a", "b", "c"], 0.1),
    ]
    for name, count, replicas, learn in cases:
        envelopes, stables = writer_history(replicas, count, learn, random.Random(count))
        events = [envelope.event for envelope in envelopes]
        baseline, total = best_of(3, functools.partial(functools.reduce, add, events, 0))
        plain_seconds, plain = best_of(
            3, functools.partial(ConcurrentVersions(0, add).update_all, envelopes)
        )
        stable_seconds, pruned = best_of(
            3, functools.partial(fold_with_stable_points, envelopes, stables)
        )
        assert plain.all == pruned.all
        assert not plain.conflict or len(replicas) > 1
        assert len(replicas) > 1 or plain.state == total
        for label, seconds in (("", plain_seconds), (", stable=", stable_seconds)):
            print(
                row(
                    f"{count:,} events, {name}{label}",
                    rate(count, seconds),
                    "events/s",
                    rate(count, baseline),
                    "functools.reduce",
                )
            )
        micros = [1e6 * seconds / count for seconds in (plain_seconds, stable_seconds, baseline)]
        print(
            "    µs per event: {:.2f} (update_all), {:.2f} (stable=), {:.3f} (reduce)".format(
                *micros
            )
        )
        print(
            f"    leaves at the end: {len(plain.leaves)}; states kept: {plain.kept:,} "
            f"without a stable point, at most {most_kept(envelopes, stables):,} with one"
        )


def main() -> None:
    bench_vectors()
    bench_delivery()
    bench_concurrent_versions()


if __name__ == "__main__":
    main()
