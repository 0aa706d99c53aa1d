"""Core benchmark: causal delivery and version-vector operations.

Run: ``.venv/bin/python -m benchmarks.core`` (or ``make bench``).

* Delivery: 1,000,000 envelopes from 10 replicas that emit and now and then
  learn another replica's version; they arrive shuffled within windows of
  1,024, so many must be buffered before their causal past arrives. The
  baseline is the bare bookkeeping a delivery needs per envelope on a
  plain dict (read the dot, raise the counter), with no buffering.
* compare/merge of 10-replica vectors, beside the same pointwise loop
  written over plain dicts.
"""

from __future__ import annotations

import datetime
import random
import time

from benchmarks.report import header, rate, row
from calliope.core.causal_delivery import CausalBuffer, receive
from calliope.core.envelope import Envelope
from calliope.core.version_vector import VersionVector

REPLICAS = [f"replica-{index}" for index in range(10)]
TOTAL = 1_000_000
CHUNK = 50_000
WINDOW = 1_024
STAMP = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


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
        replica = REPLICAS[writer]
        out.append(
            Envelope(
                stream_id="bench",
                replica_id=replica,
                sequence=version[replica],
                version=version,
                timestamp=STAMP,
                event=index,
            )
        )
    return out


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


def main() -> None:
    bench_vectors()
    bench_delivery()


if __name__ == "__main__":
    main()
