"""Large snapshots, and what a crash while saving one leaves behind.

(That a damaged newest snapshot falls back to the previous one is
``test_a_damaged_newest_snapshot_falls_back_to_the_previous`` in
test_file_journal.py; here a torn *large* one, read by the large path.)
"""

from __future__ import annotations

import logging
import random
import uuid
from pathlib import Path

import attrs
import pytest

import calliope
from calliope.adapters.files.layout import id_digest
from tests.integration.conftest import OpenApp

MIB = 1024 * 1024


@calliope.event_type("test.blob-state")
@attrs.frozen
class BlobState:
    name: str
    blob: bytes
    parts: list[bytes] = attrs.field(factory=list)
    note: str = ""


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def snapshot_files(root: Path, snapshot_id: str) -> list[Path]:
    """The snapshot files of an id, oldest first."""
    digest = id_digest(snapshot_id)
    return sorted((root / "snapshots" / digest[:2] / digest).glob("*.snap"))


async def test_a_50_mib_snapshot_round_trips(open_app: OpenApp) -> None:
    state = BlobState(
        "big",
        blob(50 * MIB, 1),
        parts=[b"small", blob(2 * MIB, 2)],
        note="é" * (2 * MIB),
    )
    async with open_app() as app:
        await app.snapshots.save_snapshot("big", BlobState("old", b"x"), sequence=1)
        saved = await app.snapshots.save_snapshot("big", state, sequence=2)
        loaded = await app.snapshots.load_snapshot("big", BlobState)
    assert loaded is not None
    assert loaded.sequence == 2 and loaded.timestamp == saved.timestamp
    assert type(loaded.state.blob) is bytes
    assert loaded.state == state


async def test_a_torn_large_snapshot_falls_back_to_the_previous(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    older, newer = BlobState("older", blob(3 * MIB, 3)), BlobState("newer", blob(3 * MIB, 4))
    async with calliope.open(root, replica_id="w") as app:
        await app.snapshots.save_snapshot("big", older, sequence=1)
        await app.snapshots.save_snapshot("big", newer, sequence=2)
    newest = snapshot_files(root, "big")[-1]
    newest.write_bytes(newest.read_bytes()[: 2 * MIB])
    with caplog.at_level(logging.WARNING, logger="calliope.files"):
        async with calliope.open(root, replica_id="w") as app:
            loaded = await app.snapshots.load_snapshot("big", BlobState)
    assert loaded is not None and loaded.sequence == 1 and loaded.state == older
    assert "damaged" in caplog.text


@pytest.mark.parametrize("size", [100, 3 * MIB], ids=["small", "large"])
async def test_a_crash_before_the_rename_leaves_the_previous_snapshot(
    tmp_path: Path, size: int
) -> None:
    """A crash after the temporary file was written (even completely) and
    before its rename leaves the ``.tmp`` file: it is never loaded, and
    saving and pruning go on around it."""
    root = tmp_path / "data"
    states = [BlobState(f"s{n}", blob(size, n)) for n in range(6)]
    async with calliope.open(root, replica_id="w") as app:
        await app.snapshots.save_snapshot("s", states[1], sequence=1)
        await app.snapshots.save_snapshot("s", states[2], sequence=2)
        await app.snapshots.save_snapshot("s", states[3], sequence=3)
    # Leave what the save of sequence 3 had written just before its rename,
    # whole, and a torn one, as the only files newer than sequence 2.
    newest = snapshot_files(root, "s")[-1]
    data = newest.read_bytes()
    newest.unlink()
    whole = newest.with_name(f"{newest.name}.{uuid.uuid4().hex}.tmp")
    torn = newest.with_name(f"{newest.name}.{uuid.uuid4().hex}.tmp")
    whole.write_bytes(data)
    torn.write_bytes(data[: len(data) // 2])

    async with calliope.open(root, replica_id="w") as app:
        loaded = await app.snapshots.load_snapshot("s", BlobState)
        assert loaded is not None and loaded.sequence == 2 and loaded.state == states[2]
        for sequence in (3, 4, 5):
            await app.snapshots.save_snapshot("s", states[sequence], sequence=sequence)
        loaded = await app.snapshots.load_snapshot("s", BlobState)
    assert loaded is not None and loaded.sequence == 5 and loaded.state == states[5]
    assert [p.name[:20] for p in snapshot_files(root, "s")] == [f"{n:020d}" for n in (3, 4, 5)]
    assert whole.exists() and torn.exists()  # not ours to delete: another saver's, maybe


async def test_a_snapshot_too_large_for_a_frame_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("calliope.adapters.files.snapshots.MAX_PAYLOAD", 2 * MIB)
    root = tmp_path / "data"
    async with calliope.open(root, replica_id="w") as app:
        await app.snapshots.save_snapshot("s", BlobState("fits", blob(MIB, 1)), sequence=1)
        for size in (3 * MIB, 100):  # the large path, then the small one
            monkeypatch.setattr("calliope.adapters.files.snapshots.MAX_PAYLOAD", size // 2)
            with pytest.raises(calliope.EventEncodingError, match="limit"):
                await app.snapshots.save_snapshot("s", BlobState("big", blob(size, 2)), sequence=2)
        loaded = await app.snapshots.load_snapshot("s", BlobState)
    assert loaded is not None and loaded.state.name == "fits"
    assert len(snapshot_files(root, "s")) == 1
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


async def test_loading_a_snapshot_as_another_type_says_which_type_it_holds(
    tmp_path: Path,
) -> None:
    @calliope.event_type("test.other-state")
    @attrs.frozen
    class OtherState:
        n: int

    async with calliope.open(tmp_path / "data") as app:
        await app.snapshots.save_snapshot("s", BlobState("x", b""), sequence=1)
        with pytest.raises(calliope.UnknownEventTypeError) as raised:
            await app.snapshots.load_snapshot("s", OtherState)
    assert str(raised.value) == (
        "snapshot 's' holds a 'test.blob-state', not a OtherState: load it with the class "
        "registered as 'test.blob-state' (or a Union that includes it), or save a new "
        "snapshot of this type"
    )
