"""Contract cases for the store itself (StorePort): its lifecycle and leases.

A store opens and closes with a stable replica id of its own; leases of
replica ids are exclusive between open stores and freed on close; a
closed store refuses appends.
"""

from __future__ import annotations

from calliope.errors import AppClosedError, ReplicaInUseError
from calliope.testing.contract._support import (
    _T0,
    StoreFactory,
    _case,
    _events,
    _expect,
    _expect_equal,
    _Ids,
    _raises,
    opened,
)


@_case
async def store_opens_and_closes(new_store: StoreFactory) -> None:
    """A store opens and closes, with and without use; its replica_id is a
    non-empty string that stays the same while it is open; two stores from
    the factory have different replica ids."""
    async with opened(new_store) as store:
        replica = store.replica_id
        _expect(isinstance(replica, str) and replica != "", f"replica_id is {replica!r}")
        async with opened(new_store) as other:
            _expect(other.replica_id != replica, "two stores of the factory share a replica id")
        await store.plain.last_sequence(_Ids()("s"))
        _expect_equal(store.replica_id, replica, "replica_id after use")


@_case
async def store_leases_are_exclusive(new_store: StoreFactory) -> None:
    """lease(r) holds replica id r (idempotently, and the store's own id is
    held from open) until the store closes: meanwhile another store's
    lease of it raises ReplicaInUseError; after the close it can be taken."""
    ids = _Ids()
    extra = ids("extra")
    async with opened(new_store) as later:
        async with opened(new_store) as holder:
            await holder.lease(extra)
            await holder.lease(extra)
            await holder.lease(holder.replica_id)
            own = holder.replica_id
            await _raises(
                ReplicaInUseError, later.lease(extra), "leasing a replica id another store leased"
            )
            await _raises(
                ReplicaInUseError, later.lease(own), "leasing another open store's replica id"
            )
        await later.lease(extra)
        await later.lease(own)
        async with opened(new_store) as third:
            await _raises(
                ReplicaInUseError,
                third.lease(extra),
                "leasing a replica id taken over after a close",
            )


@_case
async def store_refuses_appends_after_close(new_store: StoreFactory) -> None:
    """After aclose, appends to plain and replica logs raise AppClosedError."""
    ids = _Ids()
    stream = ids("s")
    async with opened(new_store) as keep:  # the storage outlives the closed store
        async with opened(new_store) as store:
            await store.plain.append(
                stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0
            )
            replica = store.replica_id
        await _raises(
            AppClosedError,
            store.plain.append(stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0),
            "plain.append on a closed store",
        )
        await _raises(
            AppClosedError,
            store.replicated.append_replica(
                stream, replica, _events(1), observed={}, timestamp_us=_T0
            ),
            "replicated.append_replica on a closed store",
        )
        _expect_equal(await keep.plain.last_sequence(stream), 1, "last_sequence after the refusals")
