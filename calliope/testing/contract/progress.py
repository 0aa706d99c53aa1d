"""Contract cases for replica progress (``StorePort.progress``, ProgressPort).

A report replaces the replica's previous one on the key, whole, and every
store on the same storage reads it; heartbeats likewise, per replica.
"""

from __future__ import annotations

from calliope.shell.ports import HeartbeatRecord, ProgressRecord
from calliope.testing.contract._support import (
    _T0,
    StoreFactory,
    _case,
    _expect_equal,
    _Ids,
    opened,
)


@_case
async def progress_reports_replace_and_are_shared(new_store: StoreFactory) -> None:
    """report replaces the replica's last report on the key; reports(key)
    lists each replica's last one, sorted by replica id, in every store;
    another key's reports are its own."""
    ids = _Ids()
    key, other_key = ids("key"), ids("other")
    async with opened(new_store) as store, opened(new_store) as other:
        _expect_equal(await store.progress.reports(key), [], "reports of an unknown key")
        one, two = sorted([store.replica_id, other.replica_id])
        await store.progress.report(key, two, {two: 1}, timestamp_us=_T0)
        await store.progress.report(key, two, {two: 3, one: 2}, timestamp_us=_T0 + 1)
        await other.progress.report(key, one, {one: 5}, timestamp_us=_T0 + 2)
        expected = [
            ProgressRecord(one, {one: 5}, _T0 + 2),
            ProgressRecord(two, {two: 3, one: 2}, _T0 + 1),
        ]
        _expect_equal(await store.progress.reports(key), expected, "reports after three")
        _expect_equal(await other.progress.reports(key), expected, "reports in another store")
        _expect_equal(await store.progress.reports(other_key), [], "another key's reports")
        before = await store.progress.reporters_token(key)  # it may change spuriously,
        await other.progress.report(key, ids("third"), {}, timestamp_us=_T0 + 4)
        if await store.progress.reporters_token(key) == before:
            raise AssertionError(  # but never stays when a new replica reported
                "reporters_token did not change when a new replica reported"
            )


@_case
async def heartbeats_replace_and_are_shared(new_store: StoreFactory) -> None:
    """beat replaces the replica's last heartbeat; heartbeats() lists every
    replica's last one, sorted, in every store (``running`` False once it
    said it stopped)."""
    ids = _Ids()
    first, second = ids("replica-a"), ids("replica-b")
    async with opened(new_store) as store, opened(new_store) as other:
        await store.progress.beat(second, timestamp_us=_T0)
        await store.progress.beat(first, timestamp_us=_T0 + 1)
        await other.progress.beat(second, timestamp_us=_T0 + 2, running=False)
        mine = [
            beat for beat in await store.progress.heartbeats() if beat.replica_id in (first, second)
        ]
        _expect_equal(
            mine,
            [HeartbeatRecord(first, _T0 + 1, True), HeartbeatRecord(second, _T0 + 2, False)],
            "heartbeats after three beats",
        )


@_case
async def a_key_type_is_claimed_once(new_store: StoreFactory) -> None:
    """claim_type returns the type name claimed first, in every store; a
    second claim with another name returns the first."""
    ids = _Ids()
    key = ids("key")
    async with opened(new_store) as store, opened(new_store) as other:
        _expect_equal(await store.progress.claim_type(key, "GCounter"), "GCounter", "first claim")
        _expect_equal(await other.progress.claim_type(key, "ORSet"), "GCounter", "second claim")
        _expect_equal(await store.progress.claim_type(key, "GCounter"), "GCounter", "again")
        _expect_equal(await other.progress.claim_type(ids("k2"), "ORSet"), "ORSet", "other key")
