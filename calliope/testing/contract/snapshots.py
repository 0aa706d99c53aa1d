"""Contract cases for snapshots (``StorePort.snapshots``, SnapshotPort).

save then load round-trips the plain data, in every store; load returns
the snapshot with the highest sequence, also after many saves (pruning).
"""

from __future__ import annotations

from calliope.shell.ports import SnapshotRecord
from calliope.testing.contract._support import (
    _T0,
    StoreFactory,
    _case,
    _expect_equal,
    _Ids,
    opened,
)


@_case
async def snapshot_round_trip(new_store: StoreFactory) -> None:
    """save then load returns the SnapshotRecord's plain data unchanged, in
    every store; an unknown id loads None."""
    ids = _Ids()
    data = {"state": [1, "two", None, 2.5, True], "nested": {"k": b"\x01"}, "text": "\u00e9"}
    record = SnapshotRecord(7, _T0 + 3, "my.state", 2, data)
    async with opened(new_store) as store, opened(new_store) as other:
        snapshot = ids("snap")
        _expect_equal(await store.snapshots.load(snapshot), None, "load of an unknown id")
        await store.snapshots.save(snapshot, record)
        _expect_equal(await store.snapshots.load(snapshot), record, "load after save")
        _expect_equal(await other.snapshots.load(snapshot), record, "load in another store")
        _expect_equal(await store.snapshots.load(ids("other")), None, "load of another id")


@_case
async def snapshot_load_returns_the_newest(new_store: StoreFactory) -> None:
    """load returns the snapshot with the highest sequence, whatever the
    order they were saved in."""
    ids = _Ids()
    async with opened(new_store) as store:
        snapshot = ids("snap")
        for sequence in (5, 9, 3):
            await store.snapshots.save(
                snapshot, SnapshotRecord(sequence, _T0 + sequence, "t", 1, {"at": sequence})
            )
        loaded = await store.snapshots.load(snapshot)
        _expect_equal(loaded, SnapshotRecord(9, _T0 + 9, "t", 1, {"at": 9}), "the newest snapshot")


@_case
async def snapshot_newest_survives_pruning(new_store: StoreFactory) -> None:
    """After many saves (older ones may be pruned) load still returns the
    newest, and each id keeps its own."""
    ids = _Ids()
    async with opened(new_store) as store:
        one, two = ids("one"), ids("two")
        for sequence in range(1, 13):
            await store.snapshots.save(one, SnapshotRecord(sequence, _T0, "t", 1, {"at": sequence}))
            await store.snapshots.save(two, SnapshotRecord(sequence * 10, _T0, "t", 1, [sequence]))
            _expect_equal(
                await store.snapshots.load(one),
                SnapshotRecord(sequence, _T0, "t", 1, {"at": sequence}),
                f"load after saving sequence {sequence}",
            )
        _expect_equal(
            await store.snapshots.load(two), SnapshotRecord(120, _T0, "t", 1, [12]), "id two"
        )


@_case
async def snapshot_ids_are_listed_by_prefix(new_store: StoreFactory) -> None:
    """ids(prefix) gives each id that has a snapshot and starts with the
    prefix once, whatever the page it is in (in any order); every id for
    None; check() of an intact snapshot finds nothing."""
    ids = _Ids()
    prefix = ids("proj") + "/"
    names = [f"{prefix}{n:04d}" for n in range(1_010)] + [ids("proj")]
    async with opened(new_store) as store:
        for name in names:
            await store.snapshots.save(name, SnapshotRecord(1, _T0, "t", 1, {"n": name}))
        await store.snapshots.save(names[0], SnapshotRecord(2, _T0, "t", 1, {"n": "again"}))
        listed = [i async for page in store.snapshots.ids(prefix) for i in page]
        _expect_equal(sorted(listed), sorted(names[:-1]), "the ids under the prefix")
        everything = [i async for page in store.snapshots.ids(None) for i in page]
        _expect_equal(sorted(set(everything) & set(names)), sorted(names), "every id")
        _expect_equal(len(everything), len(set(everything)), "each id once")
        _expect_equal(await store.snapshots.check(names[0]), [], "check of intact snapshots")
        _expect_equal(await store.snapshots.check(ids("none")), [], "check of an unknown id")
