"""A writer process for the crash loop (tests/integration/test_crash_loop.py).

python -m tests.integration.crash_worker DIR SEED RUN EPOCH REPLICA [REPLICA ...]

Waits for the line ``go`` on stdin (so that it can be started, and pay for
its imports, ahead of time), then opens one app per REPLICA on the file
store in DIR (segments of ``SEGMENT_BYTES``) and writes, from many
concurrent tasks, until it is killed (or its stdin closes):

* single ``persist`` calls on the plain streams ``plain_ids(EPOCH)``, and
  of large events (``Blob``, up to ``BLOB_BYTES``) on ``blob_id(EPOCH)``;
* ``persist_all`` batches on the plain streams, and ``persist_all`` batches with
  ``expected_sequence`` on ``expect_id(EPOCH)``;
* replicated persists on ``replicated_id(EPOCH)`` (each app as its replica);
* snapshot saves of ``snapshot_state(n)`` as sequence n under
  ``snapshot_id(REPLICA)``, n counting on from the newest stored one.

It prints ``opening`` before opening the apps and ``started`` once they are
open, then one JSON line per acknowledgement, written and flushed only after
the awaited call returned (the parent counts a line as acknowledged only if
it ends with a newline):

* ``{"k": "p", "s": stream, "sku": sku, "seq": n}``: a single persist;
* ``{"k": "b", "s": stream, "bid": id, "n": size, "first": n}``: a batch
  (its events are ``ItemAdded(batch_sku(id, i, size), i)``, i from 0),
  with ``"e": m`` if written with ``expected_sequence=m``;
* ``{"k": "x", "s": stream, "bid": id, "n": size}``: a batch refused with
  ``ConcurrencyError`` (so nothing of it may be stored);
* ``{"k": "r", "s": stream, "sku": sku, "dot": [replica, n], "v": version}``: a
  replicated persist;
* ``{"k": "s", "id": snapshot id, "seq": n}``: a snapshot save.

SKUs and batch ids carry RUN, so they are unique across runs. Any other
exception ends the process with a traceback (exit status 1), which the
parent reports. Warnings (a torn tail cut, say) go to stderr, one line each,
``WARNING <logger> <message>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import sys
import threading
from typing import Any

import attrs

import calliope
from tests.integration.events import ItemAdded

SEGMENT_BYTES = 8192
"""Every app on the crash loop's store uses this small segment size, so
that segments roll often (and kills land during rolls)."""
BLOB_BYTES = 1 << 20
PLAIN_STREAMS = 3
SINGLE_TASKS = 4
BATCH_TASKS = 2
REPLICATED_TASKS = 4


@calliope.event_type("test.crash-blob")
@attrs.frozen
class Blob:
    """A large event: its write can be torn by a kill (the kernel stops a
    long write between pages for a fatal signal)."""

    sku: str
    data: bytes


def blob_sku(tag: str, size: int) -> str:
    return f"{tag}:{size}"


def blob_data(sku: str) -> bytes:
    """The data of the blob named ``sku``: its size, its bytes from the name."""
    size = int(sku.rsplit(":", 1)[1])
    seed = hashlib.sha256(sku.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


@calliope.event_type("test.crash-snapshot")  # a stable name, whichever module runs
@attrs.frozen
class SnapState:
    """A snapshot state: what is saved as sequence ``sequence`` is always
    ``snapshot_state(sequence)``, so a loaded one can be checked alone."""

    sequence: int
    label: str
    values: list[int]


def snapshot_state(sequence: int) -> SnapState:
    """The state saved as ``sequence``. Some have over 1,024 values (the
    store packs those in worker threads), most are small."""
    size = (sequence * 7919) % 1500 if sequence % 4 == 0 else sequence % 40
    return SnapState(sequence, f"state-{sequence}", [sequence + i for i in range(size)])


def plain_ids(epoch: int) -> list[str]:
    return [f"plain-{epoch}-{k}" for k in range(PLAIN_STREAMS)]


def blob_id(epoch: int) -> str:
    return f"blob-{epoch}"


def expect_id(epoch: int) -> str:
    return f"expect-{epoch}"


def replicated_id(epoch: int) -> str:
    return f"replicated-{epoch}"


def snapshot_id(replica: str) -> str:
    return f"snap-{replica}"


def batch_sku(batch_id: str, index: int, size: int) -> str:
    return f"{batch_id}/{index}/{size}"


def report(line: dict[str, Any]) -> None:
    """One acknowledgement on stdout, flushed (one write of one line)."""
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def pause(rng: random.Random) -> None:
    """Sometimes yield for a moment, so that the tasks interleave variously."""
    if rng.random() < 0.3:
        await asyncio.sleep(rng.random() * 0.002)
    else:
        await asyncio.sleep(0)


async def singles(app: calliope.App, streams: list[str], tag: str, rng: random.Random) -> None:
    handles = [app.journal.event_stream(s, ItemAdded) for s in streams]
    for n in range(1 << 62):
        handle = rng.choice(handles)
        sku = f"{tag}.{n}"
        envelope = await handle.persist(ItemAdded(sku))
        report({"k": "p", "s": handle.stream_id, "sku": sku, "seq": envelope.sequence})
        await pause(rng)


async def blobs(app: calliope.App, stream: str, tag: str, rng: random.Random) -> None:
    handle = app.journal.event_stream(stream, Blob)
    for n in range(1 << 62):
        sku = blob_sku(f"{tag}.{n}", rng.randint(BLOB_BYTES // 16, BLOB_BYTES))
        envelope = await handle.persist(Blob(sku, blob_data(sku)))
        report({"k": "p", "s": stream, "sku": sku, "seq": envelope.sequence})
        await asyncio.sleep(rng.random() * 0.05)  # a few per round: the disk is shared


async def batches(app: calliope.App, streams: list[str], tag: str, rng: random.Random) -> None:
    handles = [app.journal.event_stream(s, ItemAdded) for s in streams]
    for n in range(1 << 62):
        handle = rng.choice(handles)
        batch_id, size = f"{tag}.{n}", rng.randint(1, 6)
        events = [ItemAdded(batch_sku(batch_id, i, size), i) for i in range(size)]
        envelopes = await handle.persist_all(events)
        first = envelopes[0].sequence
        report({"k": "b", "s": handle.stream_id, "bid": batch_id, "n": size, "first": first})
        await pause(rng)


async def expected_batches(app: calliope.App, stream: str, tag: str, rng: random.Random) -> None:
    handle = app.journal.event_stream(stream, ItemAdded)
    for n in range(1 << 62):
        batch_id, size = f"{tag}.{n}", rng.randint(1, 4)
        events = [ItemAdded(batch_sku(batch_id, i, size), i) for i in range(size)]
        last = await handle.last_sequence()
        await pause(rng)
        try:
            envelopes = await handle.persist_all(events, expected_sequence=last)
        except calliope.ConcurrencyError:
            report({"k": "x", "s": stream, "bid": batch_id, "n": size})
        else:
            first = envelopes[0].sequence
            report({"k": "b", "s": stream, "bid": batch_id, "n": size, "first": first, "e": last})
        await pause(rng)


async def replicated(
    handle: calliope.ReplicatedEventStream[ItemAdded], tag: str, rng: random.Random
) -> None:
    for n in range(1 << 62):
        sku = f"{tag}.{n}"
        reply = await handle.persist(ItemAdded(sku))
        envelope = reply.envelope
        version = envelope.version.to_dict()
        dot = list(envelope.dot)
        report({"k": "r", "s": handle.stream_id, "sku": sku, "dot": dot, "v": version})
        await pause(rng)


async def snapshots(app: calliope.App, replica: str, rng: random.Random) -> None:
    snapshot = snapshot_id(replica)
    newest = await app.snapshots.load_snapshot(snapshot, SnapState)
    start = 1 if newest is None else newest.sequence + 1
    for sequence in range(start, 1 << 62):
        await app.snapshots.save_snapshot(snapshot, snapshot_state(sequence), sequence=sequence)
        report({"k": "s", "id": snapshot, "seq": sequence})
        await pause(rng)


def exit_when_stdin_closes() -> None:
    """End this process if the parent goes away without killing it."""

    def watch() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


async def run(directory: str, seed: int, run_id: int, epoch: int, replicas: list[str]) -> None:
    print("opening", flush=True)
    apps = [
        calliope.open(directory, replica_id=replica, segment_bytes=SEGMENT_BYTES)
        for replica in replicas
    ]
    for app in apps:
        await app.__aenter__()  # never closed: the process is killed
    print("started", flush=True)
    plain, expect = plain_ids(epoch), expect_id(epoch)
    work = []
    for app, replica in zip(apps, replicas, strict=True):
        tag = f"{replica}.{run_id}"
        shared = app.journal.replicated_event_stream(replicated_id(epoch), ItemAdded)

        def rng_for(task: str, tag: str = tag) -> random.Random:
            return random.Random(f"{seed}/{tag}/{task}")

        work += [singles(app, plain, f"{tag}.s{t}", rng_for(f"s{t}")) for t in range(SINGLE_TASKS)]
        work += [batches(app, plain, f"{tag}.b{t}", rng_for(f"b{t}")) for t in range(BATCH_TASKS)]
        work.append(expected_batches(app, expect, f"{tag}.x", rng_for("x")))
        work.append(blobs(app, blob_id(epoch), f"{tag}.l", rng_for("l")))
        work += [
            replicated(shared, f"{tag}.r{t}", rng_for(f"r{t}")) for t in range(REPLICATED_TASKS)
        ]
        work.append(snapshots(app, replica, rng_for("snap")))
    await asyncio.gather(*work)


def main() -> None:
    directory, seed, run_id, epoch, *replicas = sys.argv[1:]
    if sys.stdin.readline() != "go\n":  # started ahead of time, then not needed
        return
    exit_when_stdin_closes()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    asyncio.run(run(directory, int(seed), int(run_id), int(epoch), replicas))


if __name__ == "__main__":
    main()
