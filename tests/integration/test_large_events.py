"""Large events: written and read back whole, beside small ones, on every
adapter, through the paths that keep the event loop free (packed in a worker
thread without copying large values, written with pwritev, read 1 MiB at a
time and decoded a window at a time)."""

from __future__ import annotations

import random

import attrs

import calliope
from tests.integration.conftest import OpenApp

MIB = 1024 * 1024


@calliope.event_type("test.large-event")
@attrs.frozen
class Upload:
    name: str
    blob: bytes
    parts: list[bytes] = attrs.field(factory=list)
    caption: str = ""


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_large_events_round_trip_beside_small_ones(open_app: OpenApp) -> None:
    big = Upload("big", blob(12 * MIB, 1), [blob(2 * MIB, 2), b"tiny"], "é" * (3 * MIB))
    small = [Upload(f"small-{n}", blob(100, n)) for n in range(5)]
    async with open_app(segment_bytes=4 * MIB) as app:
        stream = app.journal.event_stream("uploads", Upload)
        await stream.persist(small[0])
        await stream.persist_all([small[1], big, small[2]])
        await stream.persist(small[3])
        replicated = app.journal.replicated_event_stream("shared", Upload)
        reply = await replicated.persist(big)
        await replicated.persist(small[4])
        plain_read = [e.event for e in await stream.query().to_list()]
        replicated_read = [e.event for e in await replicated.query().to_list()]
    assert plain_read == [small[0], small[1], big, small[2], small[3]]
    assert replicated_read == [big, small[4]]
    assert reply.envelope.event == big


async def test_a_large_event_reaches_a_live_query(open_app: OpenApp) -> None:
    big = Upload("big", blob(6 * MIB, 3))
    async with open_app() as app:
        stream = app.journal.event_stream("live-uploads", Upload)
        async with stream.live_query() as live:
            await stream.persist(big)
            await stream.persist(Upload("after", b"x"))
            first = await anext(live)
            second = await anext(live)
    assert first.event == big and second.event.name == "after"
