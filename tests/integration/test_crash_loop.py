"""The crash loop: SIGKILL writers at random moments, reopen, check, repeat.

Each round starts writer processes (tests/integration/crash_worker.py) on
one file store directory, kept across rounds so that damage accumulates:
either one process holding replicas r1 and r2, or two processes holding one
each. They write concurrently (single persists, ``persist_all`` batches with
and without ``expected_sequence``, replicated persists, snapshot saves) and
report each acknowledgement on stdout once the awaited call returned. Each
process is killed (SIGKILL) 20-300 ms after it says it started; one time
in ten 0.3-1 s after (so that some snapshot saves are acknowledged), and
one in ten 0-30 ms after it starts opening the store (a kill during open
and tail recovery). This process then reopens the store and checks:

* every acknowledged event is stored exactly once, where it was
  acknowledged (the same sequence, or the same dot and version); an event
  never acknowledged may be stored or not, but never twice, never half;
* a plain stream's sequences run 1..n and ``last_sequence()`` is n;
  a batch is whole (at consecutive sequences) or absent; a batch refused
  with ``ConcurrencyError`` is absent;
* a replicated stream's query lists each replica's events 1..n in order,
  and every event after everything in its version's past;
* ``load_snapshot`` does not raise, returns exactly what was saved as its
  sequence, and nothing older than the newest acknowledged save (a kill
  cannot damage a renamed file, so falling back past one would lose it);
* the store accepts new writes (one of each kind, checked next round).

Streams are renamed every ``EPOCH_ROUNDS`` rounds, so a round's check costs
the same in round 300 as in round 30; the last round checks every stream.

Options (registered in tests/conftest.py): ``--crash-rounds=N`` (default
50; ``make test`` runs 50) and ``--crash-seed=S``. The seed (random unless
given) is printed and named in any failure; rerun with the same seed and
rounds to replay the same choices (kill delays, layouts, the writers'
seeds). Timing still varies between runs, so a replay follows the same
plan, not necessarily the same interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest

import calliope
from tests.integration.crash_worker import (
    SEGMENT_BYTES,
    Blob,
    SnapState,
    batch_sku,
    blob_data,
    blob_id,
    blob_sku,
    expect_id,
    plain_ids,
    replicated_id,
    snapshot_id,
    snapshot_state,
)
from tests.integration.events import ItemAdded

ROOT = Path(__file__).resolve().parents[2]
EPOCH_ROUNDS = 25
REPLICAS = ["r1", "r2"]
CHECKER = "checker"
SNAPSHOT_IDS = [snapshot_id(r) for r in [*REPLICAS, CHECKER]]

Dot = tuple[str, int]


@attrs.define
class Ledger:
    """What was acknowledged, over every round, and how much was checked."""

    singles: dict[str, dict[str, int]] = attrs.field(factory=dict)  # stream: sku: sequence
    batches: dict[str, dict[str, tuple[int, int]]] = attrs.field(factory=dict)  # bid: size, first
    refused: dict[str, dict[str, int]] = attrs.field(factory=dict)  # stream: bid: size
    replicated: dict[str, dict[str, tuple[Dot, dict[str, int]]]] = attrs.field(factory=dict)
    snapshots: dict[str, int] = attrs.field(factory=dict)  # id: newest acknowledged sequence
    counts: Counter[str] = attrs.field(factory=Counter)

    def record(self, ack: dict[str, Any]) -> None:
        kind, stream = ack["k"], ack.get("s", "")
        if kind == "p":
            self.singles.setdefault(stream, {})[ack["sku"]] = ack["seq"]
        elif kind == "b":
            expected = ack.get("e")
            assert expected is None or ack["first"] == expected + 1, (
                f"{stream}: batch {ack['bid']} written at {ack['first']}, expected after {expected}"
            )
            self.batches.setdefault(stream, {})[ack["bid"]] = (ack["n"], ack["first"])
        elif kind == "x":
            self.refused.setdefault(stream, {})[ack["bid"]] = ack["n"]
        elif kind == "r":
            dot = (str(ack["dot"][0]), int(ack["dot"][1]))
            self.replicated.setdefault(stream, {})[ack["sku"]] = (dot, ack["v"])
        else:
            assert kind == "s", ack
            self.snapshots[ack["id"]] = max(ack["seq"], self.snapshots.get(ack["id"], 0))
        name = {"s": "acknowledged snapshot saves", "x": "refused batches"}
        self.counts[name.get(kind, "acknowledged events")] += ack["n"] if kind == "b" else 1


@attrs.frozen
class Plan:
    """One writer process of a round: its replicas, seed, and kill moment."""

    replicas: list[str]
    seed: int
    early: bool  # killed while opening, not while writing
    delay: float


def plan_round(rng: random.Random) -> list[Plan]:
    layout = [REPLICAS] if rng.random() < 0.5 else [[r] for r in REPLICAS]
    plans = []
    for replicas in layout:
        chance = rng.random()
        early = chance < 0.1
        if early:
            delay = rng.uniform(0.0, 0.03)
        elif chance < 0.9:
            delay = rng.uniform(0.02, 0.3)
        else:  # long enough for a few snapshot saves to be acknowledged
            delay = rng.uniform(0.3, 1.0)
        plans.append(Plan(replicas, rng.getrandbits(32), early, delay))
    return plans


@attrs.frozen
class Writer:
    """A writer process started ahead of its round, waiting for ``go``."""

    plan: Plan
    process: asyncio.subprocess.Process
    stderr: Path


async def start_writers(root: Path, plans: list[Plan], run_id: int) -> list[Writer]:
    epoch = epoch_of(run_id)
    writers = []
    for n, plan in enumerate(plans):
        stderr_path = root.parent / f"stderr-{run_id}-{n}"
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.integration.crash_worker",
                str(root),
                str(plan.seed),
                str(run_id),
                str(epoch),
                *plan.replicas,
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        writers.append(Writer(plan, process, stderr_path))
    return writers


async def stop(writer: Writer) -> None:
    """End a writer, whatever it is doing (nothing if it has ended)."""
    with contextlib.suppress(ProcessLookupError):
        writer.process.kill()
    await writer.process.wait()


async def run_writer(writer: Writer) -> tuple[list[dict[str, Any]], int]:
    """Let a writer go, kill it as planned: the acknowledgements it printed,
    and how many warnings or errors it logged (a torn tail moved aside)."""
    process, plan = writer.process, writer.plan
    assert process.stdin is not None and process.stdout is not None
    stdout = process.stdout
    with contextlib.suppress(ConnectionError):  # if it died, its stderr says why (below)
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    lines: list[bytes] = []
    mark = asyncio.Event()
    wanted = b"opening\n" if plan.early else b"started\n"

    async def read() -> None:
        while line := await stdout.readline():
            lines.append(line)
            if line == wanted:
                mark.set()

    reader = asyncio.create_task(read())
    marked = asyncio.create_task(mark.wait())
    await asyncio.wait([reader, marked], return_when=asyncio.FIRST_COMPLETED)
    if mark.is_set():
        await asyncio.sleep(plan.delay)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    marked.cancel()
    await reader
    await process.wait()
    assert process.returncode == -signal.SIGKILL, (
        f"writer {plan} ended by itself (status {process.returncode}) before it was killed:\n"
        + writer.stderr.read_text()
    )
    # A line cut short by the kill was never acknowledged.
    acks = [json.loads(line) for line in lines if line.startswith(b"{") and line.endswith(b"\n")]
    logged = writer.stderr.read_text()
    warnings = logged.count("WARNING calliope") + logged.count("ERROR calliope")
    return acks, warnings


Row = tuple[int, str, int]  # a plain stream's event: sequence, sku, quantity


def check_plain(stream: str, rows: list[Row], ledger: Ledger) -> None:
    sequences = [sequence for sequence, _, _ in rows]
    assert sequences == list(range(1, len(rows) + 1)), f"{stream}: sequences not 1..n"
    at: dict[str, int] = {}
    for sequence, sku, _ in rows:
        assert sku not in at, f"{stream}: {sku} stored twice ({at[sku]}, {sequence})"
        at[sku] = sequence
    for sequence, sku, quantity in rows:  # a batch whole, in order, or absent
        parts = sku.split("/")
        if len(parts) == 3:
            batch_id, index, size = parts[0], int(parts[1]), int(parts[2])
            assert quantity == index, f"{stream}: {sku} at {sequence} has quantity {quantity}"
            first = sequence - index
            whole = [at.get(batch_sku(batch_id, i, size)) for i in range(size)]
            assert whole == list(range(first, first + size)), (
                f"{stream}: batch {batch_id} of {size} is not whole: sequences {whole}"
            )
    for sku, sequence in ledger.singles.get(stream, {}).items():
        assert at.get(sku) == sequence, f"{stream}: acknowledged {sku} at {sequence}: {at.get(sku)}"
        ledger.counts["event checks"] += 1
    for batch_id, (size, first) in ledger.batches.get(stream, {}).items():
        assert at.get(batch_sku(batch_id, 0, size)) == first, (
            f"{stream}: acknowledged batch {batch_id} of {size} at {first} is missing"
        )
        ledger.counts["event checks"] += size
    for batch_id, size in ledger.refused.get(stream, {}).items():
        assert batch_sku(batch_id, 0, size) not in at, f"{stream}: refused {batch_id} was stored"


async def plain_rows(app: calliope.App, stream: str) -> list[Row]:
    handle = app.journal.event_stream(stream, ItemAdded)
    rows = [(e.sequence, e.event.sku, e.event.quantity) async for e in handle.query()]
    assert await handle.last_sequence() == len(rows), f"{stream}: last_sequence() disagrees"
    return rows


async def blob_rows(app: calliope.App, stream: str) -> list[Row]:
    """Like plain_rows, each blob's data checked as it streams by (not kept)."""
    handle = app.journal.event_stream(stream, Blob)
    rows = []
    async for envelope in handle.query():
        sku = envelope.event.sku
        assert envelope.event.data == blob_data(sku), f"{stream}: {sku}'s data differs"
        rows.append((envelope.sequence, sku, 0))
    assert await handle.last_sequence() == len(rows), f"{stream}: last_sequence() disagrees"
    return rows


def check_replicated(
    stream: str, envelopes: list[calliope.Envelope[ItemAdded]], ledger: Ledger
) -> None:
    delivered: dict[str, int] = {}
    stored: dict[str, tuple[Dot, dict[str, int]]] = {}
    for envelope in envelopes:
        replica, sequence = envelope.replica_id, envelope.sequence
        assert sequence == delivered.get(replica, 0) + 1, (
            f"{stream}: {replica}'s events not 1..n in order: {sequence} after "
            f"{delivered.get(replica, 0)}"
        )
        assert envelope.version[replica] == sequence, f"{stream}: {envelope}"
        for other, count in envelope.version.items():
            assert other == replica or count <= delivered.get(other, 0), (
                f"{stream}: {envelope.dot} listed before {(other, count)} in its past"
            )
        delivered[replica] = sequence
        sku = envelope.event.sku
        assert sku not in stored, f"{stream}: {sku} stored twice ({stored[sku][0]}, {envelope.dot})"
        stored[sku] = (envelope.dot, envelope.version.to_dict())
    for sku, acknowledged in ledger.replicated.get(stream, {}).items():
        assert stored.get(sku) == acknowledged, (
            f"{stream}: acknowledged {sku} {acknowledged}, stored {stored.get(sku)}"
        )
        ledger.counts["event checks"] += 1


async def check_snapshots(app: calliope.App, ledger: Ledger) -> None:
    for snapshot in SNAPSHOT_IDS:
        loaded = await app.snapshots.load_snapshot(snapshot, SnapState)
        acknowledged = ledger.snapshots.get(snapshot)
        if loaded is None:
            assert acknowledged is None, f"{snapshot}: saved {acknowledged}, loads None"
            continue
        assert loaded.state == snapshot_state(loaded.sequence), f"{snapshot}: never saved: {loaded}"
        assert loaded.sequence >= (acknowledged or 0), (
            f"{snapshot}: acknowledged {acknowledged}, loads {loaded.sequence}"
        )
        ledger.counts["snapshot checks"] += 1


async def check_store(app: calliope.App, epochs: range, ledger: Ledger) -> None:
    for epoch in epochs:
        for stream in [*plain_ids(epoch), expect_id(epoch)]:
            check_plain(stream, await plain_rows(app, stream), ledger)
        check_plain(blob_id(epoch), await blob_rows(app, blob_id(epoch)), ledger)
        shared = app.journal.replicated_event_stream(replicated_id(epoch), ItemAdded)
        check_replicated(shared.stream_id, await shared.query().to_list(), ledger)
    await check_snapshots(app, ledger)


async def write_after_kill(app: calliope.App, run_id: int, epoch: int, ledger: Ledger) -> None:
    """One write of each kind, acknowledged like a writer's."""
    sku = f"{CHECKER}.{run_id}"
    for stream in plain_ids(epoch):
        envelope = await app.journal.event_stream(stream, ItemAdded).persist(ItemAdded(sku))
        ledger.record({"k": "p", "s": stream, "sku": sku, "seq": envelope.sequence})
    expect = app.journal.event_stream(expect_id(epoch), ItemAdded)
    events = [ItemAdded(batch_sku(sku, i, 2), i) for i in range(2)]
    last = await expect.last_sequence()
    envelopes = await expect.persist_all(events, expected_sequence=last)
    first = envelopes[0].sequence
    ledger.record({"k": "b", "s": expect.stream_id, "bid": sku, "n": 2, "first": first, "e": last})
    blob = blob_sku(sku, 100_000)
    stored = await app.journal.event_stream(blob_id(epoch), Blob).persist(
        Blob(blob, blob_data(blob))
    )
    ledger.record({"k": "p", "s": blob_id(epoch), "sku": blob, "seq": stored.sequence})
    shared = app.journal.replicated_event_stream(replicated_id(epoch), ItemAdded)
    reply = await shared.persist(ItemAdded(sku))
    dot, version = reply.envelope.dot, reply.envelope.version.to_dict()
    ledger.record({"k": "r", "s": shared.stream_id, "sku": sku, "dot": list(dot), "v": version})
    snapshot = snapshot_id(CHECKER)
    await app.snapshots.save_snapshot(snapshot, snapshot_state(run_id), sequence=run_id)
    ledger.record({"k": "s", "id": snapshot, "seq": run_id})


def epoch_of(run_id: int) -> int:
    return (run_id - 1) // EPOCH_ROUNDS


async def crash_round(
    writers: list[Writer], root: Path, run_id: int, ledger: Ledger, logs: pytest.LogCaptureFixture
) -> None:
    for acks, warnings in await asyncio.gather(*(run_writer(w) for w in writers)):
        for ack in acks:
            ledger.record(ack)
        ledger.counts["warnings and errors logged by writers"] += warnings
    epoch = epoch_of(run_id)
    logs.clear()
    async with calliope.open(root, replica_id=CHECKER, segment_bytes=SEGMENT_BYTES) as app:
        await check_store(app, range(epoch, epoch + 1), ledger)
        await write_after_kill(app, run_id, epoch, ledger)
    ledger.counts["warnings and errors logged by the checker"] += len(logs.records)
    ledger.counts["rounds"] += 1


async def test_sigkilled_writers_lose_nothing_acknowledged(
    tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="calliope")
    rounds: int = request.config.getoption("--crash-rounds")
    if rounds < 1:
        raise pytest.UsageError(f"--crash-rounds must be at least 1, got {rounds}")
    seed: int | None = request.config.getoption("--crash-seed")
    if seed is None:
        seed = random.SystemRandom().getrandbits(32)
    print(f"crash loop: --crash-seed={seed} --crash-rounds={rounds}")
    rng = random.Random(seed)
    plans = [plan_round(rng) for _ in range(rounds)]
    root = tmp_path / "data"
    ledger = Ledger()
    run_id = 0
    writers: list[Writer] = []
    waiting: list[Writer] = []
    try:
        waiting = await start_writers(root, plans[0], 1)
        for run_id in range(1, rounds + 1):
            writers = waiting
            # The next round's writers import while this round runs.
            waiting = (
                await start_writers(root, plans[run_id], run_id + 1) if run_id < rounds else []
            )
            await crash_round(writers, root, run_id, ledger, caplog)
        async with calliope.open(root, replica_id=CHECKER, segment_bytes=SEGMENT_BYTES) as app:
            await check_store(app, range(epoch_of(rounds) + 1), ledger)
    except Exception as error:
        raise AssertionError(
            f"crash loop failed in round {run_id} (replay: --crash-seed={seed} "
            f"--crash-rounds={run_id}): {error}"
        ) from error
    finally:
        for writer in [*writers, *waiting]:
            await stop(writer)
    print("crash loop:", dict(sorted(ledger.counts.items())))
    assert ledger.counts["rounds"] == rounds
    shutil.rmtree(root)  # hundreds of megabytes after many rounds
