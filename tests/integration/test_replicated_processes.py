"""Three OS processes write one replicated stream on the file store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import calliope
from calliope import VersionVector
from tests.integration.events import ItemAdded
from tests.integration.test_file_journal import worker

REPLICAS = ["p0", "p1", "p2"]
EACH = 500


async def test_three_processes_concurrent_pairs_are_reported_and_orders_agree(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    processes = [worker("replicate", str(root), r, "cart", str(EACH)) for r in REPLICAS]
    replies: list[dict[str, Any]] = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        replies.extend(json.loads(line) for line in out.splitlines())
    assert len(replies) == len(REPLICAS) * EACH

    def dot(value: list[Any]) -> tuple[str, int]:
        return (str(value[0]), int(value[1]))

    versions = {dot(r["dot"]): VersionVector(r["version"]) for r in replies}
    told = {(dot(r["dot"]), dot(d)) for r in replies for d in r["concurrent"]}
    pairs = 0
    dots = sorted(versions)
    for i, a in enumerate(dots):
        for b in dots[i + 1 :]:
            if versions[a].concurrent_with(versions[b]):
                pairs += 1
                assert (a, b) in told or (b, a) in told, f"nobody was told {a} || {b}"
    assert pairs > 0, "the test produced no concurrency; it would prove nothing"
    for mine, other in told:  # and nothing was reported that was not concurrent
        assert versions[mine].concurrent_with(versions[other])

    orders = []
    for replica in REPLICAS:
        async with calliope.open(root, replica_id=replica) as app:
            stream = app.journal.replicated_event_stream("cart", ItemAdded)
            orders.append(await stream.query().to_list())
    assert orders[0] == orders[1] == orders[2]
    order = orders[0]
    assert {e.dot for e in order} == set(versions)
    position = {e.dot: i for i, e in enumerate(order)}
    for envelope in order:
        assert envelope.version == versions[envelope.dot]
        past = [d for d, v in versions.items() if v < envelope.version]
        assert all(position[d] < position[envelope.dot] for d in past)

    # A restarted replica continues its sequence and keeps its knowledge.
    last = max((d for d in versions if d[0] == "p1"), key=lambda d: d[1])
    async with calliope.open(root, replica_id="p1") as app:
        stream = app.journal.replicated_event_stream("cart", ItemAdded)
        reply = await stream.persist(ItemAdded("after-restart"))
    assert reply.envelope.sequence == EACH + 1
    assert versions[last] < reply.envelope.version
    # It had not seen the others' later events: they are reported, not lost.
    unseen = {d for d, v in versions.items() if not v <= versions[last] and d[0] != "p1"}
    assert {e.dot for e in reply.concurrent_updates} == unseen
