"""``app.journal.streams()`` on both stores: what it lists, and in what memory."""

from __future__ import annotations

import tracemalloc
import uuid
from pathlib import Path

import attrs
import pytest

import calliope
from calliope import GCounter, StreamInfo, VersionVector


@calliope.event_type("listing.noted")
@attrs.frozen
class Noted:
    n: int


@pytest.fixture(params=["memory", "files"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://listing-{uuid.uuid4().hex}"
    return str(tmp_path / "store")


async def test_streams_lists_each_stream_with_its_kind_and_position(target: str) -> None:
    async with (
        calliope.open(target, replica_id="a") as a,
        calliope.open(target, replica_id="b") as b,
    ):
        for n in range(3):
            await a.journal.event_stream(f"cart-{n}", Noted).persist_all([Noted(1)] * (n + 1))
        await a.journal.event_stream("order-1", Noted).persist(Noted(1))
        await a.journal.replicated_event_stream("shared", Noted).persist(Noted(1))
        await b.journal.replicated_event_stream("shared", Noted).persist(Noted(2))
        await a.replicator.update("hits", GCounter, lambda c: c.increment())

        carts = sorted([info async for info in b.journal.streams("cart-")], key=str)
        assert carts == [
            StreamInfo("cart-0", "plain", last_sequence=1),
            StreamInfo("cart-1", "plain", last_sequence=2),
            StreamInfo("cart-2", "plain", last_sequence=3),
        ]
        everything = {info.stream_id: info async for info in a.journal.streams()}
        assert set(everything) == {"cart-0", "cart-1", "cart-2", "order-1", "shared"}
        shared = everything["shared"]
        assert shared.kind == "replicated" and shared.last_sequence is None
        assert shared.replicas == ("a", "b")
        assert shared.version is not None and shared.version >= VersionVector({"a": 1, "b": 1})
        own = [info.stream_id async for info in a.journal.streams("$calliope/")]
        assert own == ["$calliope/crdt/hits"]  # Calliope's own, only when asked for


async def test_listing_an_empty_store_or_prefix_finds_nothing(target: str) -> None:
    async with calliope.open(target, replica_id="a") as app:
        assert [info async for info in app.journal.streams()] == []
        await app.journal.event_stream("x", Noted).persist(Noted(1))
        assert [info async for info in app.journal.streams("y")] == []


async def test_a_wrong_prefix_is_refused(target: str) -> None:
    async with calliope.open(target, replica_id="a") as app:
        with pytest.raises(calliope.InvalidArgumentError):
            [info async for info in app.journal.streams(5)]  # type: ignore[arg-type]


async def test_listing_after_close_is_refused(target: str) -> None:
    async with calliope.open(target, replica_id="a") as app:
        await app.journal.event_stream("x", Noted).persist(Noted(1))
    with pytest.raises(calliope.AppClosedError):
        [info async for info in app.journal.streams()]


async def _peak_while_listing(app: calliope.App) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = 0
        async for _ in app.journal.streams():
            count += 1
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_listing_memory_does_not_grow_with_the_number_of_streams(tmp_path: Path) -> None:
    peaks = []
    for size, name in ((300, "small"), (3_000, "large")):
        async with calliope.open(tmp_path / name, replica_id="a", durability="flush") as app:
            for n in range(size):  # long ids: holding them all would show
                await app.journal.event_stream(f"{n:04d}-" + "s" * 1000, Noted).persist(Noted(n))
        async with calliope.open(tmp_path / name, replica_id="a") as app:
            count, peak = await _peak_while_listing(app)
            assert count == size
            peaks.append(peak)
    # ten times the streams (3 MB of ids): about the same peak (a page at a time)
    assert peaks[1] < 2 * peaks[0] + 512 * 1024, peaks


async def test_a_stream_whose_first_write_was_refused_is_not_listed(target: str) -> None:
    async with calliope.open(target, replica_id="a") as app:
        with pytest.raises(calliope.ConcurrencyError):
            await app.journal.event_stream("conflict", Noted).persist(Noted(1), expected_sequence=5)
        assert [info async for info in app.journal.streams()] == []


@pytest.mark.parametrize("damage", [b"good", b"", b"\xff\xfe", b"Z" * 3000, "directory", "missing"])
async def test_a_damaged_id_file_leaves_that_stream_out_and_the_rest_listed(
    tmp_path: Path, damage: bytes | str
) -> None:
    async with calliope.open(tmp_path, replica_id="a") as app:
        for name in ("good", "victim", "other"):
            await app.journal.event_stream(name, Noted).persist(Noted(1))
    victim = next(p for p in (tmp_path / "streams").glob("*/*/id") if p.read_bytes() == b"victim")
    victim.unlink()
    if damage == "directory":
        victim.mkdir()
    elif damage != "missing":
        assert isinstance(damage, bytes)
        victim.write_bytes(damage)
    async with calliope.open(tmp_path, replica_id="a") as app:
        listed = sorted([info.stream_id async for info in app.journal.streams()])
    assert listed == ["good", "other"]
