"""The file store's change marker: idle pollers look at nothing, and an
append by another process still wakes its watchers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import attrs
import pytest

import calliope
from calliope.adapters.files import changes as changes_module


@calliope.event_type("marker.noted")
@attrs.frozen
class Noted:
    n: int


async def test_an_idle_poller_looks_at_no_stream_and_a_write_elsewhere_wakes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks = 0
    real_look = changes_module._look

    def counting_look(probes: list[changes_module._StreamProbe]) -> list[bool]:
        nonlocal looks
        looks += 1
        return real_look(probes)

    monkeypatch.setattr(changes_module, "_look", counting_look)
    async with calliope.open(tmp_path, replica_id="a", poll_interval=0.005) as reader:
        streams = [reader.journal.event_stream(f"s{n}", Noted) for n in range(20)]
        async with calliope.open(tmp_path, replica_id="b", poll_interval=0.005) as writer:
            for n in range(20):
                await writer.journal.event_stream(f"s{n}", Noted).persist(Noted(n))
            lives = [stream.live_query() for stream in streams]
            for live in lives:
                await live.__aenter__()
            for live in lives:  # catch up
                assert (await anext(live)).event.n >= 0
            await asyncio.sleep(0.1)  # settle: the marker is seen unchanged from here
            looks = 0
            await asyncio.sleep(0.4)  # about 80 polls with nothing written
            assert looks <= 2, looks  # (one full look per 100 quiet polls)
            # another app (another process, as far as the marker goes) writes
            await writer.journal.event_stream("s7", Noted).persist(Noted(70))
            envelope = await asyncio.wait_for(anext(lives[7]), 5)
            assert envelope.event == Noted(70)
            for live in lives:
                await live.close()
