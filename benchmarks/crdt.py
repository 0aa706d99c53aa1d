"""CRDT benchmark: effect throughput per type, the RGA at 100,000 elements, ORSet churn.

Run: ``.venv/bin/python -m benchmarks.crdt`` (about half a minute).

Every figure is printed beside a baseline measured in the same run: a loop of
plain dict/list/set updates doing the bare work of the operation (no
persistence, no causal metadata), and the ratio between them.

* Effect throughput: 50,000 operations per type from three replicas that
  stay in sync, prepared and tagged beforehand; only ``effect`` is timed.
* RGA typing: 100,000 inserts, each right after the previous one except that
  the cursor jumps to a random place 5% of the time; prepare (index -> element
  id), tag and effect are timed, per block of 10,000, so the cost per
  operation can be read against the document's size.
* RGA random: 10,000 more inserts at random positions in that document.
* ORSet: 100,000 adds and removes over 1,000 elements, prepare + effect.

Complexity reached for the RGA (n elements, tombstones included; B = 64
elements per leaf, F = 32 children per branch, so the height is
log_F(n / B), 3 at n = 100,000):

* prepare ``insert(i, x)`` / ``delete(i)``: O(log n): descend by the live
  counts of each branch, then scan one leaf.
* ``effect``: O(log n): find the anchor through two persistent hash maps
  (element -> leaf, node -> parent), copy the root-to-leaf path
  (O(B + F log_F n) pointers, copied by C tuple slicing), plus one step per
  concurrent insert skipped at the same anchor.
* compaction: O(log n) per tombstone removed; the tree is rebuilt in O(n)
  only after it has become sparse (amortised O(1) per removal).

No operation walks the document, so the cost per operation grows with log n
(and the cache), not with n: the typing blocks below show it. The other
types cost O(log32 size) (one or two HAMT updates of ``immutables.Map``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from benchmarks.report import header, rate, row
from calliope.core.crdt import (
    RGA,
    Flag,
    GCounter,
    GSet,
    LWWRegister,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
    Tagged,
    tag_operations,
)
from calliope.core.version_vector import VersionVector

REPLICAS = ("a", "b", "c")
EFFECTS = 50_000
TYPING = 100_000
RANDOM_INSERTS = 10_000
CHURN = 100_000


def history(
    crdt_type: type, prepare: Callable[[Any, random.Random], object], count: int, seed: int
) -> list[Tagged[Any]]:
    """``count`` operations written in turn by three replicas that stay in sync."""
    rng = random.Random(seed)
    state = crdt_type()
    delivered = VersionVector()
    out: list[Tagged[Any]] = []
    for index in range(count):
        (tagged,) = tag_operations(REPLICAS[index % 3], delivered, [prepare(state, rng)])
        delivered = tagged.version
        state = state.effect(tagged)
        out.append(tagged)
    return out


def time_effects(crdt_type: type, ops: list[Tagged[Any]]) -> float:
    state = crdt_type()
    start = time.perf_counter()
    for tagged in ops:
        state = state.effect(tagged)
    return time.perf_counter() - start


def timed_loop(loop: Callable[[], object]) -> float:
    start = time.perf_counter()
    loop()
    return time.perf_counter() - start


# -- baselines: the bare work of each operation on plain mutable containers ------


def bare_gcounter(ops: list[Tagged[Any]]) -> Callable[[], object]:
    plain = [(t.replica_id, t.op.n) for t in ops]

    def loop() -> object:
        counts: dict[str, int] = {}
        for replica, n in plain:
            counts[replica] = counts.get(replica, 0) + n
        return counts

    return loop


def bare_pncounter(ops: list[Tagged[Any]]) -> Callable[[], object]:
    plain = [(t.replica_id, type(t.op).__name__ == "Increment", t.op.n) for t in ops]

    def loop() -> object:
        up: dict[str, int] = {}
        down: dict[str, int] = {}
        for replica, increment, n in plain:
            target = up if increment else down
            target[replica] = target.get(replica, 0) + n
        return up, down

    return loop


def bare_gset(ops: list[Tagged[Any]]) -> Callable[[], object]:
    plain = [t.op.element for t in ops]

    def loop() -> object:
        elements: set[Any] = set()
        for element in plain:
            elements.add(element)
        return elements

    return loop


def bare_orset(ops: list[Tagged[Any]]) -> Callable[[], object]:
    plain = [(type(t.op).__name__ == "Add", t.op.element, t.dot) for t in ops]

    def loop() -> object:
        dots: dict[Any, tuple[str, int]] = {}
        for add, element, dot in plain:
            if add:
                dots[element] = dot
            else:
                dots.pop(element, None)
        return dots

    return loop


def bare_lww(ops: list[Tagged[Any]]) -> Callable[[], object]:
    plain = [(t.op.timestamp, t.replica_id, t.op.value) for t in ops]

    def loop() -> object:
        best: tuple[Any, str, Any] = (-1, "", None)
        for write in plain:
            if write[:2] >= best[:2]:
                best = write
        return best

    return loop


def bare_mv(ops: list[Tagged[Any]]) -> Callable[[], object]:
    plain = [(t.dot, t.version.to_dict(), t.op.value) for t in ops]

    def loop() -> object:
        entries: list[tuple[tuple[str, int], Any]] = []
        for dot, version, value in plain:
            entries = [e for e in entries if e[0][1] > version.get(e[0][0], 0)]
            entries.append((dot, value))
        return entries

    return loop


def bare_flag(ops: list[Tagged[Any]]) -> Callable[[], object]:
    plain = [(type(t.op).__name__ == "Enable", t.dot) for t in ops]

    def loop() -> object:
        dots: set[tuple[str, int]] = set()
        for enable, dot in plain:
            dots = {dot} if enable else set()
        return dots

    return loop


def bare_ormap(ops: list[Tagged[Any]]) -> Callable[[], object]:
    plain = [(t.op.key, t.replica_id, getattr(getattr(t.op, "op", None), "n", None)) for t in ops]

    def loop() -> object:
        entries: dict[Any, dict[str, int]] = {}
        for key, replica, n in plain:
            if n is None:
                entries.pop(key, None)
            else:
                counts = entries.setdefault(key, {})
                counts[replica] = counts.get(replica, 0) + n
        return entries

    return loop


def bare_rga(positions: list[tuple[int, str]]) -> Callable[[], object]:
    def loop() -> object:
        items: list[str] = []
        for index, value in positions:
            items.insert(index, value)
        return items

    return loop


# -- the types -------------------------------------------------------------------

KEYS = [f"key-{n}" for n in range(100)]


def _ormap_step(state: ORMap, rng: random.Random) -> object:
    key = rng.choice(KEYS)
    if rng.random() < 0.05:
        return state.remove(key)
    return state.update(key, GCounter, lambda counter: counter.increment(rng.randint(1, 5)))


STEPS: list[tuple[type, Callable[[Any, random.Random], object], Callable[..., Any]]] = [
    (GCounter, lambda s, rng: s.increment(rng.randint(1, 5)), bare_gcounter),
    (
        PNCounter,
        lambda s, rng: s.increment(2) if rng.random() < 0.5 else s.decrement(1),
        bare_pncounter,
    ),
    (GSet, lambda s, rng: s.add(rng.randrange(1_000)), bare_gset),
    (
        ORSet,
        lambda s, rng: (
            s.add(rng.randrange(1_000)) if rng.random() < 0.6 else s.remove(rng.randrange(1_000))
        ),
        bare_orset,
    ),
    (LWWRegister, lambda s, rng: s.set(rng.random(), rng.randrange(10**6)), bare_lww),
    (MVRegister, lambda s, rng: s.set(rng.randrange(100)), bare_mv),
    (Flag, lambda s, rng: s.enable() if rng.random() < 0.5 else s.disable(), bare_flag),
    (ORMap, _ormap_step, bare_ormap),
]


def bench_effects() -> None:
    header(f"effect throughput: {EFFECTS:,} operations per type, 3 replicas in sync")
    for crdt_type, step, bare in STEPS:
        ops = history(crdt_type, step, EFFECTS, seed=1)
        seconds = time_effects(crdt_type, ops)
        baseline = timed_loop(bare(ops))
        print(
            row(
                f"{crdt_type.__name__}.effect",
                rate(EFFECTS, seconds),
                "ops/s",
                rate(EFFECTS, baseline),
                "dict/set update loop",
            )
        )
    indexes: list[tuple[int, str]] = []

    def rga_step(state: RGA, rng: random.Random) -> object:
        # The replicas are in sync, so an insert lands at the index it was prepared at.
        index = rng.randint(0, len(state))
        indexes.append((index, "x"))
        return state.insert(index, "x")

    ops = history(RGA, rga_step, EFFECTS, seed=1)
    seconds = time_effects(RGA, ops)
    baseline = timed_loop(bare_rga(indexes))
    print(
        row(
            "RGA.effect (random positions)",
            rate(EFFECTS, seconds),
            "ops/s",
            rate(EFFECTS, baseline),
            "list.insert loop",
        )
    )


def bench_rga_typing() -> RGA:
    rng = random.Random(3)
    cursors: list[int] = []
    cursor = 0
    for length in range(TYPING):
        if rng.random() < 0.05:
            cursor = rng.randint(0, length)
        cursors.append(cursor)
        cursor += 1
    doc = RGA()
    delivered = VersionVector()
    block = TYPING // 10
    blocks: list[float] = []
    total = 0.0
    for first in range(0, TYPING, block):
        start = time.perf_counter()
        for index in cursors[first : first + block]:
            (tagged,) = tag_operations("a", delivered, [doc.insert(index, "x")])
            delivered = tagged.version
            doc = doc.effect(tagged)
        elapsed = time.perf_counter() - start
        blocks.append(elapsed / block * 1e6)
        total += elapsed
    baseline = timed_loop(bare_rga([(index, "x") for index in cursors]))
    assert len(doc) == TYPING
    header(f"RGA typing: {TYPING:,} inserts, 95% right after the previous one")
    print(
        row(
            "RGA typing: prepare + tag + effect",
            rate(TYPING, total),
            "ops/s",
            rate(TYPING, baseline),
            "list.insert at the same indexes",
        )
    )
    shown = ", ".join(f"{micros:.0f}" for micros in blocks)
    print(f"  microseconds per insert, per block of {block:,} (document growing): {shown}")
    first_blocks = sum(blocks[:2]) / 2
    last_blocks = sum(blocks[-2:]) / 2
    print(
        f"  last two blocks / first two: {last_blocks / first_blocks:.2f}x the cost for a "
        f"document 10x longer (linear growth would be ~10x): O(log n) per operation"
    )
    return doc


def bench_rga_random(doc: RGA) -> None:
    rng = random.Random(5)
    delivered = VersionVector({"a": len(doc)})
    indexes = []
    length = len(doc)
    for _ in range(RANDOM_INSERTS):
        indexes.append(rng.randint(0, length))
        length += 1
    start = time.perf_counter()
    for index in indexes:
        (tagged,) = tag_operations("b", delivered, [doc.insert(index, "y")])
        delivered = tagged.version
        doc = doc.effect(tagged)
    seconds = time.perf_counter() - start
    base: list[str] = ["x"] * TYPING

    def loop() -> object:
        for index in indexes:
            base.insert(index, "y")
        return base

    baseline = timed_loop(loop)
    header(f"RGA: {RANDOM_INSERTS:,} inserts at random positions of a {TYPING:,}-element document")
    print(
        row(
            "RGA random inserts: prepare + tag + effect",
            rate(RANDOM_INSERTS, seconds),
            "ops/s",
            rate(RANDOM_INSERTS, baseline),
            "list.insert (memmove)",
        )
    )


def bench_orset_churn() -> None:
    rng = random.Random(9)
    plan = [(rng.random() < 0.5, rng.randrange(1_000)) for _ in range(CHURN)]
    state = ORSet()
    delivered = VersionVector()
    start = time.perf_counter()
    for index, (add, element) in enumerate(plan):
        op = state.add(element) if add else state.remove(element)
        (tagged,) = tag_operations(REPLICAS[index % 3], delivered, [op])
        delivered = tagged.version
        state = state.effect(tagged)
    seconds = time.perf_counter() - start

    def loop() -> object:
        dots: dict[int, int] = {}
        for index, (add, element) in enumerate(plan):
            if add:
                dots[element] = index
            else:
                dots.pop(element, None)
        return dots

    baseline = timed_loop(loop)
    header(f"ORSet: {CHURN:,} adds and removes over 1,000 elements, 3 replicas in turn")
    print(
        row(
            "ORSet churn: prepare + tag + effect",
            rate(CHURN, seconds),
            "ops/s",
            rate(CHURN, baseline),
            "dict set/pop loop",
        )
    )
    print(f"  live elements at the end: {len(state.value)}; dots kept: {len(state.dots)}")


def main() -> None:
    start = time.perf_counter()
    bench_effects()
    doc = bench_rga_typing()
    bench_rga_random(doc)
    bench_orset_churn()
    print(f"\n(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
