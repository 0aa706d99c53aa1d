"""Contract cases for replica logs (``StorePort.replicated``, ReplicaLogPort).

append_replica's versions (observed entries merged in), the sorted list
of replicas, read_replica's ranges, replica_version; and read_new: one
page per replica with something new, exclude, pages bounded by limit
(in whole batches, with ``more``), batches cut after ``known``.
"""

from __future__ import annotations

from collections.abc import Collection

from calliope.testing.contract._support import (
    _T0,
    StoreFactory,
    _by_replica,
    _case,
    _check_page,
    _collect,
    _Event,
    _events,
    _expect,
    _expect_batch,
    _expect_equal,
    _expect_events,
    _ExpectedLog,
    _flatten,
    _Ids,
    _read_replica,
    opened,
)

# -- replica logs --------------------------------------------------------------


@_case
async def replica_append_merges_observed(new_store: StoreFactory) -> None:
    """append_replica gives the batch's first event the version of the log's
    last event with the observed entries of other replicas merged in where
    higher, and the replica's own entry equal to its sequence; an append
    without observed keeps what the log had seen."""
    ids = _Ids()
    a, b, c = ids("a"), ids("b"), ids("c")
    async with opened(new_store) as store:
        await store.lease(a)
        await store.lease(b)
        stream = ids("s")
        log_a, log_b = _ExpectedLog(), _ExpectedLog()
        expected = log_a.add(a, _events(2), _T0, {})
        batch = await store.replicated.append_replica(
            stream, a, _events(2), observed={}, timestamp_us=_T0
        )
        _expect_batch(batch, expected, f"the first append to {a}'s log")
        _expect_equal(dict(expected.version), {a: 1}, "model")
        steps: list[tuple[dict[str, int], dict[str, int]]] = [
            ({a: 2}, {a: 2, b: 1}),  # observed merged in
            ({a: 1, b: 7}, {a: 2, b: 2}),  # lower entries and the writer's own ignored
            ({}, {a: 2, b: 3}),  # nothing observed: what the log had seen stays
            ({a: 5, c: 1}, {a: 5, b: 4, c: 1}),
        ]
        for step, (observed, version) in enumerate(steps):
            expected = log_b.add(b, _events(1, step), _T0 + step, observed)
            _expect_equal(dict(expected.version), version, "model")
            batch = await store.replicated.append_replica(
                stream, b, _events(1, step), observed=observed, timestamp_us=_T0 + step
            )
            _expect_batch(batch, expected, f"append {step + 1} to {b}'s log, observed={observed}")
        expected = log_b.add(b, _events(3, 10), _T0 + 9, {a: 6})
        batch = await store.replicated.append_replica(
            stream, b, _events(3, 10), observed={a: 6}, timestamp_us=_T0 + 9
        )
        _expect_batch(batch, expected, f"a 3-event append to {b}'s log")
        _expect_events(
            await _read_replica(store, stream, b), log_b.events(), f"{b}'s log read back"
        )
        _expect_events(
            await _read_replica(store, stream, a), log_a.events(), f"{a}'s log read back"
        )
        _expect_equal(
            await store.replicated.append_replica(stream, b, [], observed={a: 9}, timestamp_us=_T0),
            None,
            "append_replica of no events",
        )
        _expect_equal(len(await _read_replica(store, stream, b)), 7, "events in b's log")


@_case
async def replica_list_is_sorted(new_store: StoreFactory) -> None:
    """replicas(stream) lists the replica ids with a log in the stream, sorted,
    as every store sees them; an unknown stream has none."""
    ids = _Ids()
    a, b, c = ids("a"), ids("b"), ids("c")
    async with opened(new_store) as store, opened(new_store) as other:
        stream = ids("s")
        _expect_equal(await store.replicated.replicas(stream), [], "replicas of an unknown stream")
        for replica in (c, a, b):
            await store.lease(replica)
            await store.replicated.append_replica(
                stream, replica, _events(1), observed={}, timestamp_us=_T0
            )
        _expect_equal(await store.replicated.replicas(stream), [a, b, c], "replicas(stream)")
        _expect_equal(
            await other.replicated.replicas(stream), [a, b, c], "replicas in another store"
        )
        _expect_equal(await store.replicated.replicas(ids("t")), [], "replicas of another stream")


@_case
async def replica_read_ranges(new_store: StoreFactory) -> None:
    """read_replica reads one replica's log like plain read: inclusive bounds,
    to_sequence optional, batches cut at the bounds; other replicas' logs and
    unknown replicas are apart."""
    ids = _Ids()
    a, b = ids("a"), ids("b")
    async with opened(new_store) as store:
        await store.lease(a)
        await store.lease(b)
        stream, log = ids("s"), _ExpectedLog()
        for count, observed in [(3, {}), (2, {b: 1}), (4, {b: 1})]:
            log.add(a, _events(count), _T0 + count, observed)
            await store.replicated.append_replica(
                stream, a, _events(count), observed=observed, timestamp_us=_T0 + count
            )
            if count == 3:
                await store.replicated.append_replica(
                    stream, b, _events(1, 50), observed={a: 3}, timestamp_us=_T0
                )
        chunks = store.replicated.read_replica(stream, a, 2)
        _expect_events(
            _flatten(await _collect(chunks, "read_replica(a, 2)")),
            log.events(2),
            "read_replica(a, 2)",
        )
        for first, last in [(1, None), (2, 4), (5, 5), (4, 9), (6, 100)]:
            _expect_events(
                await _read_replica(store, stream, a, first, last),
                log.events(first, last),
                f"read_replica(a, {first}, {last})",
            )
        _expect_events(await _read_replica(store, stream, a, 10), [], "read_replica(a, 10)")
        _expect_equal([e.writer for e in await _read_replica(store, stream, b)], [b], "b's log")
        _expect_events(
            await _read_replica(store, stream, ids("nobody")), [], "an unknown replica's log"
        )


@_case
async def replica_version_is_the_last_events(new_store: StoreFactory) -> None:
    """replica_version is the version of the last event of the replica's log
    ({} for none), as every store sees it."""
    ids = _Ids()
    a, b = ids("a"), ids("b")
    async with opened(new_store) as store, opened(new_store) as other:
        await store.lease(a)
        stream, log = ids("s"), _ExpectedLog()
        _expect_equal(await store.replicated.replica_version(stream, a), {}, "version of no log")
        log.add(a, _events(1), _T0, {b: 2})
        await store.replicated.append_replica(
            stream, a, _events(1), observed={b: 2}, timestamp_us=_T0
        )
        log.add(a, _events(3), _T0, {b: 4})
        await store.replicated.append_replica(
            stream, a, _events(3), observed={b: 4}, timestamp_us=_T0
        )
        _expect_equal(log.version, {a: 4, b: 4}, "model")
        _expect_equal(
            await store.replicated.replica_version(stream, a), {a: 4, b: 4}, "replica_version"
        )
        _expect_equal(
            await other.replicated.replica_version(stream, a), {a: 4, b: 4}, "in another store"
        )
        _expect_equal(
            await store.replicated.replica_version(stream, b), {}, "version of b (no log)"
        )


# -- replica logs: read_new ----------------------------------------------------


@_case
async def read_new_pages_per_replica(new_store: StoreFactory) -> None:
    """read_new returns one page per replica holding the events after
    known[replica] (0 when absent), and none for replicas with nothing new
    (also for an unknown stream)."""
    ids = _Ids()
    a, b, c = ids("a"), ids("b"), ids("c")
    async with opened(new_store) as store:
        stream = ids("s")
        logs = {r: _ExpectedLog() for r in (a, b, c)}
        for replica, count in [(a, 3), (b, 2), (c, 1)]:
            await store.lease(replica)
            logs[replica].add(replica, _events(count), _T0)
            await store.replicated.append_replica(
                stream, replica, _events(count), observed={}, timestamp_us=_T0
            )
        _expect_equal(
            await store.replicated.read_new(ids("t"), {}, limit=10),
            [],
            "read_new of an unknown stream",
        )
        known = {a: 3, b: 1}
        pages = _by_replica(await store.replicated.read_new(stream, known, limit=10), "read_new")
        _expect_equal(sorted(pages), [b, c], f"replicas with pages after known={known}")
        for replica, after in [(b, 1), (c, 0)]:
            events = _check_page(pages[replica], after, 10, "read_new")
            _expect_events(events, logs[replica].events(after + 1), f"the page of {replica}")
            _expect_equal(pages[replica].more, False, f"more of {replica}'s whole rest")
        everything = {a: 3, b: 2, c: 1}
        _expect_equal(
            await store.replicated.read_new(stream, everything, limit=10),
            [],
            "read_new when all is known",
        )


@_case
async def read_new_excludes_replicas(new_store: StoreFactory) -> None:
    """read_new(..., exclude=ids) leaves out the logs of the replicas in
    ``exclude`` (any collection; empty by default), and only those."""
    ids = _Ids()
    a, b, c = ids("a"), ids("b"), ids("c")
    async with opened(new_store) as store:
        stream = ids("s")
        for replica in (a, b, c):
            await store.lease(replica)
            await store.replicated.append_replica(
                stream, replica, _events(2), observed={}, timestamp_us=_T0
            )
        cases: list[tuple[Collection[str], list[str]]] = [
            ((), [a, b, c]),
            ({a}, [b, c]),
            ([b], [a, c]),
            (frozenset({a, c}), [b]),
            ({a, b, c}, []),
            ({ids("nobody")}, [a, b, c]),
        ]
        for exclude, left in cases:
            pages = await store.replicated.read_new(stream, {}, limit=10, exclude=exclude)
            _expect_equal(
                sorted(_by_replica(pages, "read_new")),
                left,
                f"replicas read with exclude={exclude}",
            )
        pages = await store.replicated.read_new(stream, {}, limit=10)
        _expect_equal(
            sorted(_by_replica(pages, "read_new")), [a, b, c], "replicas read without exclude"
        )


@_case
async def read_new_pages_are_bounded(new_store: StoreFactory) -> None:
    """With limit=3 and 10 single-event batches a page holds 1 to 3 events
    and sets more while the log holds more; reading on from the returned
    events yields the rest, without loss or repeat, the last page with more
    False."""
    ids = _Ids()
    a = ids("a")
    async with opened(new_store) as store:
        await store.lease(a)
        stream, log = ids("s"), _ExpectedLog()
        for n in range(10):
            log.add(a, _events(1, n), _T0 + n, {})
            await store.replicated.append_replica(
                stream, a, _events(1, n), observed={}, timestamp_us=_T0 + n
            )
        known: dict[str, int] = {}
        read: list[_Event] = []
        for _ in range(12):
            pages = _by_replica(await store.replicated.read_new(stream, known, limit=3), "read_new")
            if not pages:
                break
            _expect_equal(sorted(pages), [a], "replicas read")
            page = pages[a]
            events = _check_page(page, known.get(a, 0), 3, f"read_new after {known}")
            _expect(1 <= len(events) <= 3, f"a page of {len(events)} events with limit=3")
            rest = events[-1].sequence < 10
            _expect_equal(
                page.more, rest, f"more of the page ending at {events[-1].sequence} of 10"
            )
            read.extend(events)
            known[a] = events[-1].sequence
        _expect_events(read, log.events(), "the events of every page")


@_case
async def read_new_big_batch_comes_whole(new_store: StoreFactory) -> None:
    """A page holds whole batches and at least one: a batch bigger than the
    limit comes whole; reading on yields the rest."""
    ids = _Ids()
    a = ids("a")
    async with opened(new_store) as store:
        await store.lease(a)
        stream, log = ids("s"), _ExpectedLog()
        for count in (5, 1, 1):
            log.add(a, _events(count), _T0, {})
            await store.replicated.append_replica(
                stream, a, _events(count), observed={}, timestamp_us=_T0
            )
        pages = _by_replica(await store.replicated.read_new(stream, {}, limit=3), "read_new")
        page = pages.get(a)
        _expect(page is not None, f"read_new returned no page for {a}")
        assert page is not None
        _expect_equal(
            [len(batch.items) for batch in page.batches[:1]],
            [5],
            "the first batch of the page (whole)",
        )
        events = _check_page(page, 0, 3, "read_new(limit=3)")
        _expect_equal(page.more, len(events) < 7, "more")
        rest = await store.replicated.read_new(stream, {a: events[-1].sequence}, limit=3)
        later = [e for p in rest for e in _flatten(p.batches)]
        _expect_events(events + later, log.events(), "the first page and the rest")


@_case
async def read_new_slices_a_straddling_batch(new_store: StoreFactory) -> None:
    """A batch straddling known comes cut to the events after it, as a batch
    whose first_sequence and version are those of its first event."""
    ids = _Ids()
    a, b = ids("a"), ids("b")
    async with opened(new_store) as store:
        await store.lease(a)
        stream, log = ids("s"), _ExpectedLog()
        full = log.add(a, _events(4), _T0, {b: 3})
        await store.replicated.append_replica(
            stream, a, _events(4), observed={b: 3}, timestamp_us=_T0
        )
        pages = _by_replica(await store.replicated.read_new(stream, {a: 2}, limit=10), "read_new")
        _expect_equal(sorted(pages), [a], "replicas read")
        want = full.sliced(3, None)
        assert want is not None
        got = pages[a].batches[0]
        _expect_equal(
            (got.first_sequence, dict(got.version), [tuple(i) for i in got.items]),
            (3, {a: 3, b: 3}, [tuple(i) for i in want.items]),
            "(first_sequence, version, items) of a batch cut after known=2",
        )
