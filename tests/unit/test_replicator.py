"""The replicator on the memory store: several replicas in one process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Self

import attrs
import pytest

import calliope
from calliope import GCounter, ORSet
from calliope.core.crdt import (
    RGA,
    Flag,
    GSet,
    LWWRegister,
    MVRegister,
    ORMap,
    PNCounter,
    Tagged,
)
from calliope.core.version_vector import VersionVector
from calliope.shell.app import App

FAST: dict[str, Any] = {"poll_interval": 0.005, "heartbeat_interval": 0.05, "failure_timeout": 0.5}


def store() -> str:
    return f"memory://replicator-{uuid.uuid4().hex}"


@contextlib.asynccontextmanager
async def replicas(target: str, *names: str, **options: Any) -> AsyncIterator[list[App]]:
    async with contextlib.AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(
                calliope.open(target, replica_id=name, **{**FAST, **options})
            )
            for name in names
        ]
        yield apps


def increment(counter: GCounter) -> object:
    return counter.increment()


# -- every CRDT type through the replicator ---------------------------------

CASES: list[tuple[type, Callable[[Any], object], Callable[[Any], object], object]] = [
    (GCounter, lambda c: c.increment(2), lambda c: c.increment(3), 5),
    (PNCounter, lambda c: c.increment(5), lambda c: c.decrement(2), 3),
    (GSet, lambda s: s.add("a"), lambda s: s.add("b"), frozenset({"a", "b"})),
    (ORSet, lambda s: s.add("a"), lambda s: s.add("b"), frozenset({"a", "b"})),
    (Flag, lambda f: f.enable(), lambda f: f.disable(), None),  # True if concurrent
    (MVRegister, lambda r: r.set("a"), lambda r: r.set("b"), None),
    (
        LWWRegister,
        lambda r: r.set("a", 1),
        lambda r: r.set("b", 2),
        "b",
    ),
    (RGA, lambda t: t.insert(0, "a"), lambda t: t.insert(0, "b"), None),
    (
        ORMap,
        lambda m: m.update("x", GCounter, lambda c: c.increment(1)),
        lambda m: m.update("x", GCounter, lambda c: c.increment(2)),
        None,
    ),
]


@pytest.mark.parametrize(("crdt_type", "first", "second", "expected"), CASES)
async def test_every_crdt_converges_across_replicas(
    crdt_type: type, first: Any, second: Any, expected: object
) -> None:
    async with replicas(store(), "a", "b") as (a, b):
        await asyncio.gather(
            a.replicator.update("k", crdt_type, first),
            b.replicator.update("k", crdt_type, second),
        )
        # Each update returned once reported: a read from one replica (any)
        # includes both.
        state_a: Any = await a.replicator.get("k", crdt_type, timeout=5)
        state_b: Any = await b.replicator.get("k", crdt_type, timeout=5)
        assert state_a.value == state_b.value
        if expected is not None:
            assert state_a.value == expected
        if crdt_type is RGA:
            assert sorted(state_a.value) == ["a", "b"]
        if crdt_type is MVRegister:  # both if concurrent; else the later one
            assert state_a.value in ({"a", "b"}, {"a"}, {"b"})
        if crdt_type is ORMap:
            assert state_a.value["x"] == 3


@attrs.frozen
class Raise:
    to: int


@attrs.frozen
class MaxRegister:
    """A user's own CRDT: the largest value ever set."""

    op_types: ClassVar[tuple[type, ...]] = (Raise,)
    best: int = 0

    @property
    def value(self) -> int:
        return self.best

    def raise_to(self, to: int) -> Raise:
        return Raise(to)

    def effect(self, tagged: Tagged[Raise], /) -> Self:
        return attrs.evolve(self, best=max(self.best, tagged.op.to))

    def compact(self, stable: VersionVector, /) -> Self:
        return self


def test_the_users_crdt_passes_the_law_harness() -> None:
    from hypothesis import strategies as st

    from calliope.testing import call, check_crdt

    check_crdt(MaxRegister, st.integers(0, 9).map(lambda n: call("raise_to", n)))


async def test_a_users_own_crdt_works_without_registration() -> None:
    target = store()
    async with replicas(target, "a", "b") as (a, b):
        await a.replicator.update("best", MaxRegister, lambda r: r.raise_to(7))
        await b.replicator.update("best", MaxRegister, lambda r: r.raise_to(3))
        state = await b.replicator.get("best", MaxRegister, timeout=5)
        assert state.value == 7
    async with replicas(target, "c") as (c,):  # a restart loads the snapshot
        assert (await c.replicator.get("best", MaxRegister)).value == 7


# -- replica counts ------------------------------------------------------------


async def test_update_waits_for_the_replicas_asked_for() -> None:
    async with replicas(store(), "a", "b") as (a, b):
        await b.replicator.get("hits", GCounter)  # b holds a replica of the key
        state = await a.replicator.update("hits", GCounter, increment, replicas=2, timeout=5)
        assert state.value == 1
        # b has applied it: its reported progress covers a's operation
        status = {s.replica_id: s for s in await a.replicator.replicas("hits")}
        assert status["b"].live and status["b"].delivered is not None
        assert status["b"].delivered["a"] == 1


async def test_too_few_replicas_time_out_and_the_update_stays_durable() -> None:
    target = store()
    async with replicas(target, "a", "b") as (a, b):
        await b.replicator.get("hits", GCounter)
        with pytest.raises(calliope.ReplicationTimeout) as raised:
            await a.replicator.update("hits", GCounter, increment, replicas=3, timeout=0.3)
        assert (raised.value.acknowledged, raised.value.required) == (2, 3)
        assert isinstance(raised.value, TimeoutError)
        assert (await b.replicator.get("hits", GCounter, replicas=2, timeout=5)).value == 1
        async with replicas(target, "c") as (c,):
            await c.replicator.get("hits", GCounter)
            state = await a.replicator.update("hits", GCounter, increment, replicas=3, timeout=5)
            assert state.value == 2
            assert (await c.replicator.get("hits", GCounter, replicas=3, timeout=5)).value == 2


async def test_get_includes_what_other_replicas_applied() -> None:
    async with replicas(store(), "a", "b") as (a, b):
        await a.replicator.get("hits", GCounter)
        for _ in range(20):
            await b.replicator.update("hits", GCounter, increment)
        # b applied 20: a read from at least 1 replica includes them all
        assert (await a.replicator.get("hits", GCounter, timeout=5)).value == 20


async def test_get_from_more_replicas_than_are_live_times_out() -> None:
    async with replicas(store(), "a") as (a,):
        with pytest.raises(calliope.ReplicationTimeout) as raised:
            await a.replicator.get("hits", GCounter, replicas=2, timeout=0.1)
        assert (raised.value.acknowledged, raised.value.required) == (1, 2)


async def test_a_closed_replica_stops_counting() -> None:
    target = store()
    async with replicas(target, "a") as (a,):
        async with replicas(target, "b") as (b,):
            await b.replicator.get("hits", GCounter)
            await a.replicator.update("hits", GCounter, increment, replicas=2, timeout=5)
        statuses = {s.replica_id: s.live for s in await a.replicator.replicas()}
        assert statuses == {"a": True, "b": False}
        with pytest.raises(calliope.ReplicationTimeout):
            await a.replicator.update("hits", GCounter, increment, replicas=2, timeout=0.2)


# -- waiting and watching ------------------------------------------------------


async def test_wait_until_checks_the_current_state_first() -> None:
    async with replicas(store(), "a") as (a,):
        await a.replicator.update("hits", GCounter, lambda c: c.increment(5))
        state = await a.replicator.wait_until("hits", GCounter, lambda c: c.value >= 5, timeout=0)
        assert state.value == 5


async def test_wait_until_sees_remote_updates_and_times_out_otherwise() -> None:
    async with replicas(store(), "a", "b") as (a, b):
        waiting = asyncio.ensure_future(
            a.replicator.wait_until("hits", GCounter, lambda c: c.value >= 3, timeout=5)
        )
        for _ in range(3):
            await b.replicator.update("hits", GCounter, increment)
        assert (await waiting).value == 3
        with pytest.raises(calliope.WaitTimeout) as raised:
            await a.replicator.wait_until("hits", GCounter, lambda c: c.value > 3, timeout=0.05)
        assert isinstance(raised.value, TimeoutError)


async def test_updates_gives_the_latest_state_to_a_slow_consumer() -> None:
    async with (
        replicas(store(), "a", "b") as (a, b),
        a.replicator.updates("hits", GCounter) as changes,
    ):
        for _ in range(50):
            await b.replicator.update("hits", GCounter, increment)
        await a.replicator.wait_until("hits", GCounter, lambda c: c.value == 50, timeout=5)
        first = await anext(changes)
        assert first.value == 50  # the states in between were skipped
        await a.replicator.update("hits", GCounter, increment)
        assert (await anext(changes)).value == 51


async def test_updates_ends_when_the_app_closes() -> None:
    app = calliope.open(store(), replica_id="a", **FAST)
    await app.__aenter__()
    seen: list[int] = []

    async def consume() -> None:
        async with app.replicator.updates("hits", GCounter) as changes:
            async for state in changes:
                seen.append(state.value)

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0.01)
    await app.replicator.update("hits", GCounter, increment)
    await asyncio.sleep(0.01)
    await app.aclose()
    await asyncio.wait_for(consumer, 5)
    assert seen == [1]


async def test_closing_the_app_ends_a_wait_for_replicas() -> None:
    app = calliope.open(store(), replica_id="a", **FAST)
    await app.__aenter__()
    waiting = asyncio.ensure_future(app.replicator.update("hits", GCounter, increment, replicas=2))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(app.aclose(), 5)
    with pytest.raises(calliope.AppClosedError):
        await waiting


# -- mistakes: clear errors, nothing written -----------------------------------


async def test_a_key_has_one_type() -> None:
    target = store()
    async with replicas(target, "a", "b") as (a, b):
        await a.replicator.update("k", GCounter, increment)
        with pytest.raises(calliope.WrongCRDTTypeError, match="GCounter"):
            await a.replicator.get("k", ORSet)
        with pytest.raises(calliope.WrongCRDTTypeError, match="GCounter"):
            await b.replicator.get("k", ORSet)  # another replica reads the stored name
        assert (await b.replicator.get("k", GCounter)).value == 1


@pytest.mark.parametrize(
    ("prepare", "error"),
    [
        (lambda c: 5, calliope.InvalidOperationError),
        (lambda c: None, calliope.InvalidOperationError),
        (lambda c: ORSet().add("x"), calliope.InvalidOperationError),
        (lambda c: 1 / 0, ZeroDivisionError),
        (lambda c: [c.increment(), "nope"], calliope.InvalidOperationError),
        (lambda c: c.increment(2**70), calliope.InvalidOperationError),  # msgpack cannot
    ],
)
async def test_a_bad_prepare_fails_alone_and_writes_nothing(
    prepare: Callable[[GCounter], object], error: type[Exception]
) -> None:
    async with replicas(store(), "a") as (a,):
        results = await asyncio.gather(
            a.replicator.update("hits", GCounter, increment),
            a.replicator.update("hits", GCounter, prepare),
            a.replicator.update("hits", GCounter, increment),
            return_exceptions=True,
        )
        assert isinstance(results[1], error)
        assert not isinstance(results[0], BaseException)
        assert not isinstance(results[2], BaseException)
        assert (await a.replicator.get("hits", GCounter)).value == 2
        assert a.replicator._keys["hits"].key.counts == {"a": 2}


async def test_a_prepare_returning_no_operation_writes_nothing() -> None:
    async with replicas(store(), "a") as (a,):
        await a.replicator.update("hits", GCounter, increment)
        results = await asyncio.gather(
            a.replicator.update("hits", GCounter, lambda c: []),
            a.replicator.update("hits", GCounter, increment),
            a.replicator.update("hits", GCounter, lambda c: (), replicas=2, timeout=0.1),
        )
        assert [state.value for state in results] == [1, 2, 2]
        assert a.replicator._keys["hits"].key.counts == {"a": 2}


async def test_an_operation_that_would_not_read_back_equal_is_refused() -> None:
    async with replicas(store(), "a") as (a,):
        with pytest.raises(calliope.InvalidOperationError, match=r"read back|stored"):
            await a.replicator.update("s", ORSet, lambda s: s.add((1, 2)))
        assert (await a.replicator.get("s", ORSet)).value == frozenset()


@pytest.mark.parametrize(
    "call",
    [
        lambda app: app.replicator.get("", GCounter),
        lambda app: app.replicator.get(5, GCounter),
        lambda app: app.replicator.get("k", int),
        lambda app: app.replicator.get("k", GCounter, replicas=0),
        lambda app: app.replicator.get("k", GCounter, replicas=True),
        lambda app: app.replicator.get("k", GCounter, timeout=-1),
        lambda app: app.replicator.get("k", GCounter, timeout="1"),
        lambda app: app.replicator.update("k", GCounter, "increment"),
        lambda app: app.replicator.wait_until("k", GCounter, True),
        lambda app: app.replicator.delete(""),
    ],
)
async def test_wrong_arguments_raise_invalid_argument(call: Callable[[App], Any]) -> None:
    async with replicas(store(), "a") as (a,):
        with pytest.raises(calliope.InvalidArgumentError):
            await call(a)


def test_calliopes_own_ids_are_reserved() -> None:
    async def attempt() -> None:
        async with replicas(store(), "a") as (a,):
            a.journal.replicated_event_stream("$calliope/crdt/hits", GCounter)

    with pytest.raises(calliope.InvalidStreamIdError, match="reserved"):
        asyncio.run(attempt())


# -- delete ----------------------------------------------------------------------


async def test_delete_wins_on_every_replica() -> None:
    target = store()
    async with replicas(target, "a", "b") as (a, b):
        await a.replicator.update("hits", GCounter, increment)
        await b.replicator.get("hits", GCounter, replicas=2, timeout=5)
        await a.replicator.delete("hits")
        with pytest.raises(calliope.KeyDeletedError):
            await a.replicator.get("hits", GCounter)
        with pytest.raises(calliope.KeyDeletedError):
            await b.replicator.wait_until("hits", GCounter, lambda c: c.value > 5, timeout=5)
        with pytest.raises(calliope.KeyDeletedError):
            await b.replicator.update("hits", GCounter, increment)
    async with replicas(target, "c") as (c,):
        await c.replicator.delete("other")  # a key this app never opened
        with pytest.raises(calliope.KeyDeletedError):
            await c.replicator.get("hits", GCounter)
        with pytest.raises(calliope.KeyDeletedError):
            await c.replicator.get("other", ORSet)


# -- stability, compaction and snapshots -------------------------------------------


def adding(element: int) -> Callable[[ORSet], object]:
    return lambda s: s.add(element)


def removing(element: int) -> Callable[[ORSet], object]:
    return lambda s: s.remove(element)


async def test_stable_operations_are_compacted_once_every_replica_reported() -> None:
    async with replicas(store(), "a", "b") as (a, b):
        for n in range(5):
            await a.replicator.update("s", ORSet, adding(n))
        await b.replicator.get("s", ORSet, timeout=5)
        for n in range(5):
            await b.replicator.update("s", ORSet, removing(n))
        await a.replicator.get("s", ORSet, timeout=5)  # a applied all b reported
        await b.replicator.get("s", ORSet, timeout=5)
        progress = a.replicator._keys["s"].progress
        stable = await progress.compact()
        assert stable == VersionVector({"a": 5, "b": 5})
        state = a.replicator._keys["s"].key.state
        assert state.value == frozenset()
        assert state == ORSet()  # no tombstones or dots left


async def test_a_live_replica_that_lags_holds_back_stability() -> None:
    async with replicas(store(), "a", "b") as (a, b):
        await b.replicator.get("s", ORSet)
        # b reported nothing of a's operations yet: stop b's follower
        await b.replicator._keys["s"].key.stop()
        await a.replicator.update("s", ORSet, lambda s: s.add(1))
        assert await a.replicator._keys["s"].progress.compact() == VersionVector()


async def test_a_failed_replica_stops_holding_back_stability() -> None:
    target = store()
    async with replicas(target, "a") as (a,):
        async with replicas(target, "b", failure_timeout=0.2) as (b,):
            await b.replicator.update("s", ORSet, lambda s: s.add(1))
        await a.replicator.update("s", ORSet, lambda s: s.add(2))
        await a.replicator.get("s", ORSet, timeout=5)
        stable = await a.replicator._keys["s"].progress.compact()
        assert stable == VersionVector({"a": 1, "b": 1})


async def test_a_lone_writer_snapshots_while_it_runs_not_only_at_close() -> None:
    async with replicas(store(), "a") as (a,):
        for _ in range(4):
            await asyncio.gather(
                *(a.replicator.update("hits", GCounter, increment) for _ in range(300))
            )
        storage = a.replicator._keys["hits"].key.storage
        for _ in range(200):  # the compactor runs beside the rounds
            loaded = await storage.load()
            if loaded is not None:
                break
            await asyncio.sleep(0.01)
        assert loaded is not None
        assert loaded[1]["a"] >= 1000


async def test_a_restart_loads_the_snapshot_and_replays_only_newer_operations() -> None:
    target = store()
    async with replicas(target, "a") as (a,):
        await asyncio.gather(
            *(a.replicator.update("hits", GCounter, increment) for _ in range(300))
        )
    async with replicas(target, "a") as (a,):
        state = await a.replicator.get("hits", GCounter)
        assert state.value == 300
        assert a.replicator._keys["hits"].key.applied == 0  # all from the snapshot
        await a.replicator.update("hits", GCounter, increment)
    async with replicas(target, "b") as (b,):
        assert (await b.replicator.get("hits", GCounter)).value == 301


async def test_a_read_only_app_reads_keys_and_refuses_updates(tmp_path: Any) -> None:
    async with calliope.open(tmp_path, replica_id="a", **FAST) as a:
        await a.replicator.update("hits", GCounter, lambda c: c.increment(3))
    async with calliope.open(tmp_path, read_only=True, **FAST) as reader:
        assert (await reader.replicator.get("hits", GCounter)).value == 3
        with pytest.raises(calliope.ReadOnlyStoreError):
            await reader.replicator.update("hits", GCounter, increment)
        assert (await reader.replicator.get("hits", GCounter)).value == 3


async def test_a_failed_replica_catches_up_when_it_returns_and_everyone_converges() -> None:
    target = store()
    async with replicas(target, "a") as (a,):
        async with replicas(target, "b", failure_timeout=0.2) as (b,):
            await b.replicator.update("text", RGA, lambda t: t.insert(0, "x"))
            await b.replicator.update("text", RGA, lambda t: t.insert(1, "y"))
            await b.replicator.update("set", ORSet, lambda s: s.add("kept"))
        # b is gone: a deletes what b wrote and compacts past it (tombstones go)
        await a.replicator.get("text", RGA, timeout=5)
        await a.replicator.update("text", RGA, lambda t: t.delete(0))
        await a.replicator.update("set", ORSet, lambda s: s.remove("kept"))
        assert await a.replicator._keys["text"].progress.compact() == VersionVector(
            {"a": 1, "b": 2}
        )
        await a.replicator._keys["text"].progress.snapshot()
        async with replicas(target, "b") as (b,):
            text = await b.replicator.get("text", RGA, timeout=5)
            assert text.value == ("y",)  # b caught up before writing
            await b.replicator.update("text", RGA, lambda t: t.insert(0, "z"))
            await b.replicator.update("set", ORSet, lambda s: s.add("again"))
            texts = {(await app.replicator.get("text", RGA, timeout=5)).value for app in (a, b)}
            sets = {(await app.replicator.get("set", ORSet, timeout=5)).value for app in (a, b)}
            assert texts == {("z", "y")}
            assert sets == {frozenset({"again"})}


# -- found by attacking it ----------------------------------------------------------


async def test_two_replicas_starting_a_key_as_two_types_at_once_leave_it_usable() -> None:
    async with replicas(store(), "a", "b") as (a, b):
        results = await asyncio.gather(
            a.replicator.update("k", GCounter, increment),
            b.replicator.update("k", ORSet, lambda s: s.add("x")),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, calliope.WrongCRDTTypeError)]
        assert len(failed) == 1  # one claimed the key first; the other wrote nothing
        winner = GCounter if not isinstance(results[0], BaseException) else ORSet
        for app in (a, b):
            await app.replicator.get("k", winner, timeout=5)  # usable everywhere
        async with replicas(store(), "c") as (c,):
            await c.replicator.get("other", GCounter)


async def test_a_prepare_sees_every_update_that_returned_elsewhere() -> None:
    async with replicas(store(), "berlin", "lima") as (berlin, lima):
        await lima.replicator.get("tags", ORSet)  # lima holds the key already
        await berlin.replicator.update("tags", ORSet, lambda s: s.add("x"))
        seen: list[frozenset[str]] = []

        def remove_x(tags: ORSet) -> object:
            seen.append(tags.value)
            return tags.remove("x")

        await lima.replicator.update("tags", ORSet, remove_x)
        assert seen == [frozenset({"x"})]
        assert (await berlin.replicator.get("tags", ORSet, timeout=5)).value == frozenset()


async def test_get_includes_an_update_whose_writer_closed_since(tmp_path: Any) -> None:
    target = str(tmp_path)
    async with replicas(target, "b", poll_interval=0.5) as (b,):
        await b.replicator.get("hits", GCounter)
        async with replicas(target, "a") as (a,):
            await a.replicator.update("hits", GCounter, increment)
        # a stopped (its heartbeat says so) before b's follower applied its update
        assert (await b.replicator.get("hits", GCounter, timeout=5)).value == 1


async def test_an_update_after_a_delete_in_the_same_round_is_refused() -> None:
    async with replicas(store(), "a") as (a,):
        await a.replicator.update("hits", GCounter, increment)
        results = await asyncio.gather(
            a.replicator.delete("hits"),
            a.replicator.update("hits", GCounter, increment),
            return_exceptions=True,
        )
        assert results[0] is None
        assert isinstance(results[1], calliope.KeyDeletedError)


async def test_system_exit_in_prepare_reaches_its_caller_alone() -> None:
    def leave(_: GCounter) -> object:
        raise SystemExit(3)

    async with replicas(store(), "a") as (a,):
        others = asyncio.ensure_future(a.replicator.update("hits", GCounter, increment))
        with pytest.raises(SystemExit):
            await a.replicator.update("hits", GCounter, leave)
        assert (await others).value == 1
        assert (await a.replicator.update("hits", GCounter, increment)).value == 2


async def test_a_damaged_replicator_key_can_be_repaired(tmp_path: Any) -> None:
    async with calliope.open(tmp_path, replica_id="a", **FAST) as app:
        report = await app.journal.repair("$calliope/crdt/hits", replica_id="a")
        assert not report.repaired


async def test_a_delete_by_an_app_that_never_used_the_key_reaches_the_next_update() -> None:
    async with replicas(store(), "a", "b") as (a, b):
        await b.replicator.update("k", GCounter, increment)
        await a.replicator.delete("k")  # a never held "k"
        with pytest.raises(calliope.KeyDeletedError):
            await b.replicator.update("k", GCounter, increment)


async def test_a_prepare_raising_cancelled_error_cancels_its_caller_alone() -> None:
    def cancelled(_: GCounter) -> object:
        raise asyncio.CancelledError

    async with replicas(store(), "a") as (a,):
        results = await asyncio.gather(
            a.replicator.update("hits", GCounter, increment),
            a.replicator.update("hits", GCounter, cancelled),
            a.replicator.update("hits", GCounter, increment),
            return_exceptions=True,
        )
        assert isinstance(results[1], asyncio.CancelledError)
        assert [r.value for r in (results[0], results[2])] == [1, 2]  # type: ignore[union-attr]


async def test_the_keys_own_type_is_not_refused_while_another_types_start_fails(
    tmp_path: Any,
) -> None:
    target = str(tmp_path)
    async with replicas(target, "a", "b") as (a, b):
        await b.replicator.update("k", ORSet, lambda s: s.add("x"))
        results = await asyncio.gather(
            a.replicator.update("k", GCounter, increment),
            a.replicator.update("k", ORSet, lambda s: s.add("y")),
            return_exceptions=True,
        )
        assert isinstance(results[0], calliope.WrongCRDTTypeError)
        assert not isinstance(results[1], BaseException), results[1]


async def test_damaged_progress_heartbeat_and_type_files_lose_nothing(tmp_path: Any) -> None:
    async with calliope.open(tmp_path, replica_id="a", **FAST) as a:
        await a.replicator.update("k", GCounter, lambda c: c.increment(3))
    damaged = [
        path
        for pattern in ("progress/*/*/*", "heartbeats/*")
        for path in tmp_path.glob(pattern)
        if path.name != "id"
    ]
    assert {path.suffix for path in damaged} == {".progress", ".beat", ""}  # "" is "type"
    for path in damaged:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    async with calliope.open(tmp_path, replica_id="b", **FAST) as b:
        assert (await b.replicator.get("k", GCounter, timeout=5)).value == 3
        assert (await b.replicator.update("k", GCounter, increment)).value == 4
    async with calliope.open(tmp_path, replica_id="c", **FAST) as c:
        with pytest.raises(calliope.WrongCRDTTypeError):  # the log still names its type
            await c.replicator.get("k", ORSet)
