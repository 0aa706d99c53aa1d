"""Contract cases for listing streams (``StorePort.catalog``, StreamCatalogPort)."""

from __future__ import annotations

from calliope.testing.contract._support import (
    _T0,
    StoreFactory,
    _case,
    _events,
    _expect_equal,
    _Ids,
    opened,
)


@_case
async def list_streams_finds_every_written_stream_once(new_store: StoreFactory) -> None:
    """list_streams(prefix) yields (id, replicated) for every written stream
    whose id starts with the prefix, each once, plain and replicated, written
    by this store or another; streams never written are not listed."""
    ids = _Ids()
    prefix = ids("cat") + "/"
    async with opened(new_store) as store, opened(new_store) as other:
        expected = set()
        for n in range(40):
            stream = f"{prefix}plain-{n}"
            writer = store if n % 2 else other
            await writer.plain.append(
                stream, "w", _events(1), expected_sequence=None, timestamp_us=_T0
            )
            expected.add((stream, False))
        for n in range(5):
            stream = f"{prefix}replicated-{n}"
            await store.replicated.append_replica(
                stream, store.replica_id, _events(2), observed={}, timestamp_us=_T0
            )
            expected.add((stream, True))
        await store.plain.append(
            ids("elsewhere"), "w", _events(1), expected_sequence=None, timestamp_us=_T0
        )
        await store.plain.last_sequence(f"{prefix}never-written")  # a read writes nothing
        for lister in (store, other):
            listed = [entry async for page in lister.catalog.list_streams(prefix) for entry in page]
            _expect_equal(len(listed), len(set(listed)), "entries listed more than once")
            _expect_equal(set(listed), expected, "the streams listed under the prefix")
        everything = {entry async for page in store.catalog.list_streams(None) for entry in page}
        missing = expected - everything
        _expect_equal(missing, set(), "streams missing from the listing without a prefix")
