"""What goes wrong when opening or writing a store, and the error that says so.

Faults guarded here (issue 9, "every error says what to do"):

* ``calliope.open`` on a non-empty directory that is not a store wrote
  ``calliope.json`` and ``streams/`` into it (a home directory, say);
* a store whose ``calliope.json`` was deleted silently got a new default
  replica id, forking a replica's history;
* a store that cannot be written (permissions, a read-only mount) raised a
  raw ``PermissionError``, and there was no way to inspect it without
  writing (``read_only=True``);
* one id written as a plain and as a replicated stream became two separate
  logs;
* a snapshot past the end of its stream was accepted.

Permission failures are simulated by making the ``os`` calls that write
under the store's root raise (the suite may run as root, where ``chmod``
stops nothing).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import calliope
from calliope.adapters.files import layout
from tests.integration.conftest import OpenApp
from tests.integration.events import Cart, ItemAdded

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


async def write_store(root: Path, replica_id: str | None = None) -> str:
    """A store with two events in plain stream "cart" and a snapshot of it;
    returns the replica id the app had."""
    async with calliope.open(root, replica_id=replica_id) as app:
        cart = app.journal.event_stream("cart", ItemAdded)
        await cart.persist_all([ItemAdded("a"), ItemAdded("b")])
        await app.snapshots.save_snapshot("cart", Cart({"a": 1}), sequence=1)
        return app.replica_id


def deny_writes(monkeypatch: pytest.MonkeyPatch, root: Path, code: int) -> None:
    """Make every ``os`` call that would write under ``root`` fail with
    ``code`` (EACCES: no permission; EROFS: a read-only mount)."""
    prefix = str(root)

    def denied(path: Any) -> OSError:
        cls = PermissionError if code == errno.EACCES else OSError
        return cls(code, os.strerror(code), os.fspath(path))

    def guard(real: Callable[..., Any], writes: Callable[..., bool]) -> Callable[..., Any]:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            if os.fspath(path).startswith(prefix) and writes(*args, **kwargs):
                raise denied(path)
            return real(path, *args, **kwargs)

        return call

    def opens_for_writing(flags: int, *args: Any, **kwargs: Any) -> bool:
        return bool(flags & _WRITE_FLAGS)

    monkeypatch.setattr(os, "open", guard(os.open, opens_for_writing))
    monkeypatch.setattr(os, "mkdir", guard(os.mkdir, lambda *a, **k: True))


# -- 1. a directory that is not a store --------------------------------------------


async def test_only_a_new_or_empty_directory_becomes_a_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    (home / ".profile").write_text("mine too")
    before = tree(home)
    with pytest.raises(calliope.StorageError, match="not empty") as caught:
        async with calliope.open(home):
            pass
    assert "new or empty directory" in str(caught.value)
    assert tree(home) == before  # nothing written into it

    empty, missing = tmp_path / "empty", tmp_path / "missing"
    empty.mkdir()
    for root in (empty, missing, empty):  # the last: an existing store
        async with calliope.open(root) as app:
            await app.journal.event_stream("cart", ItemAdded).persist(ItemAdded("c"))
    async with calliope.open(empty) as app:
        assert await app.journal.event_stream("cart", ItemAdded).last_sequence() == 2


# -- 2. a lost calliope.json ---------------------------------------------------------


async def test_a_store_whose_calliope_json_was_lost_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    old = await write_store(root)
    await write_store(root, replica_id="node-b")
    (root / "calliope.json").unlink()
    with pytest.raises(calliope.StorageError, match=r"calliope\.json is missing") as caught:
        async with calliope.open(root):
            pass
    message = str(caught.value)
    assert repr(old) in message and "'node-b'" in message  # the ids that used it
    assert "Restore" in message and "replica_id=" in message
    assert not (root / "calliope.json").exists()


async def test_a_store_whose_calliope_json_was_lost_still_opens_read_only(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    await write_store(root)
    (root / "calliope.json").unlink()
    async with calliope.open(root, read_only=True) as app:
        assert await app.journal.event_stream("cart", ItemAdded).last_sequence() >= 1
    assert not (root / "calliope.json").exists()


async def test_the_old_replica_id_recreates_calliope_json(tmp_path: Path) -> None:
    root = tmp_path / "data"
    old = await write_store(root)
    (root / "calliope.json").unlink()
    with pytest.raises(calliope.StorageError, match="'someone-else' is not one of them"):
        async with calliope.open(root, replica_id="someone-else"):
            pass
    async with calliope.open(root, replica_id=old) as app:
        assert app.replica_id == old
    async with calliope.open(root) as app:  # the default again
        assert app.replica_id == old
        events = await app.journal.event_stream("cart", ItemAdded).query().to_list()
    assert [e.event.sku for e in events] == ["a", "b"]


async def test_a_replica_id_with_a_newline_is_recorded_whole(tmp_path: Path) -> None:
    root = tmp_path / "data"
    await write_store(root, replica_id="two\nlines")
    assert "two\nlines" in layout.recorded_replica_ids(str(root))


# -- 3. stores that cannot be written ------------------------------------------------


async def test_a_read_only_open_reads_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "data"
    default = await write_store(root)
    async with calliope.open(root):
        before = tree(root)
        # No lease: it opens even while its replica id is in use.
        async with calliope.open(root, read_only=True) as reader:
            assert reader.replica_id == default
            cart = reader.journal.event_stream("cart", ItemAdded)
            assert [e.event.sku for e in await cart.query().to_list()] == ["a", "b"]
            async with cart.live_query() as live:
                assert (await anext(live)).event == ItemAdded("a")
            snapshot = await reader.snapshots.load_snapshot("cart", Cart)
            assert snapshot is not None and snapshot.sequence == 1
            assert await reader.journal.event_stream("none", ItemAdded).query().to_list() == []
            shared = reader.journal.replicated_event_stream("none", ItemAdded, replica_id="x")
            assert await shared.query().to_list() == []
        assert tree(root) == before


@pytest.mark.parametrize("state", ["missing", "empty"])
async def test_a_read_only_open_needs_a_store(tmp_path: Path, state: str) -> None:
    root = tmp_path / "data"
    if state == "empty":
        root.mkdir()
    with pytest.raises(calliope.StorageError, match="read_only"):
        async with calliope.open(root, read_only=True):
            pass
    assert os.listdir(root) == [] if state == "empty" else not root.exists()


async def test_every_write_on_a_read_only_store_is_refused(open_app: OpenApp) -> None:
    async with open_app(replica_id="w") as writer, open_app(read_only=True) as reader:
        await writer.journal.event_stream("cart", ItemAdded).persist(ItemAdded("a"))
        cart = reader.journal.event_stream("cart", ItemAdded)
        shared = reader.journal.replicated_event_stream("shared", ItemAdded)
        other = reader.journal.replicated_event_stream("shared", ItemAdded, replica_id="x")
        writes = [
            cart.persist(ItemAdded("b")),
            cart.persist_all([ItemAdded("b")]),
            shared.persist(ItemAdded("b")),
            other.persist(ItemAdded("b")),
            reader.snapshots.save_snapshot("cart", Cart(), sequence=1),
        ]
        for write in writes:
            with pytest.raises(calliope.ReadOnlyStoreError, match="read_only=True"):
                await write
        assert [e.event.sku for e in await cart.query().to_list()] == ["a"]
        assert await shared.query().to_list() == []
        assert await reader.snapshots.load_snapshot("cart", Cart) is None


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
async def test_a_store_that_cannot_be_written_opens_with_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    root = tmp_path / "data"
    await write_store(root)
    deny_writes(monkeypatch, root, code)
    with pytest.raises(calliope.StorageError) as caught:
        async with calliope.open(root):
            pass
    assert str(root) in str(caught.value) and "read_only=True" in str(caught.value)
    async with calliope.open(root, read_only=True) as reader:  # inspecting it works
        events = await reader.journal.event_stream("cart", ItemAdded).query().to_list()
    assert len(events) == 2


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
async def test_writes_that_lose_permission_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    root = tmp_path / "data"
    async with calliope.open(root) as app:
        deny_writes(monkeypatch, root, code)
        attempts = [
            app.journal.event_stream("new", ItemAdded).persist(ItemAdded("a")),
            app.journal.replicated_event_stream("new-r", ItemAdded).persist(ItemAdded("a")),
            app.snapshots.save_snapshot("new", Cart(), sequence=0),
        ]
        for attempt in attempts:
            with pytest.raises(calliope.StorageError) as caught:
                await attempt
            assert str(root) in str(caught.value) and "read_only=True" in str(caught.value)


# -- 4. one id, two kinds of stream --------------------------------------------------


async def test_a_plain_stream_is_not_written_as_a_replicated_one(open_app: OpenApp) -> None:
    async with open_app(replica_id="a") as first, open_app(replica_id="b") as second:
        await first.journal.event_stream("cart", ItemAdded).persist(ItemAdded("a"))
        for app in (first, second):  # the second app (or process) has seen nothing yet
            shared = app.journal.replicated_event_stream("cart", ItemAdded)
            with pytest.raises(calliope.InvalidArgumentError, match="'cart' is a plain stream"):
                await shared.persist(ItemAdded("b"))
            # Nor read as one: it would find nothing, and a live query wait forever.
            with pytest.raises(calliope.InvalidArgumentError, match="reading it as a replicated"):
                await shared.query().to_list()
            with pytest.raises(calliope.InvalidArgumentError, match="reading it as a replicated"):
                async with shared.live_query() as live:
                    await asyncio.wait_for(live.__anext__(), 5)


async def test_a_replicated_stream_is_not_written_as_a_plain_one(open_app: OpenApp) -> None:
    async with open_app(replica_id="a") as first, open_app(replica_id="b") as second:
        await first.journal.replicated_event_stream("cart", ItemAdded).persist(ItemAdded("a"))
        for app in (first, second):
            plain = app.journal.event_stream("cart", ItemAdded)
            with pytest.raises(
                calliope.InvalidArgumentError, match="'cart' is a replicated stream"
            ):
                await plain.persist_all([ItemAdded("b")])
            with pytest.raises(calliope.InvalidArgumentError, match="reading it as a plain"):
                await plain.last_sequence()
            with pytest.raises(calliope.InvalidArgumentError, match="reading it as a plain"):
                await plain.query().to_list()


# -- 5. snapshots past the end of their stream ---------------------------------------


@pytest.mark.parametrize("sequence", [6, 10**12])
async def test_a_snapshot_past_the_end_of_its_stream_is_refused(
    open_app: OpenApp, sequence: int
) -> None:
    async with open_app() as app:
        cart = app.journal.event_stream("cart-1", ItemAdded)
        await cart.persist_all([ItemAdded(str(n)) for n in range(5)])
        with pytest.raises(calliope.InvalidArgumentError, match="last event is 5"):
            await app.snapshots.save_snapshot("cart-1", Cart(), sequence=sequence)
        assert await app.snapshots.load_snapshot("cart-1", Cart) is None
        await app.snapshots.save_snapshot("cart-1", Cart(), sequence=5)  # the end is fine


@pytest.mark.parametrize("sequence", [2**63, 10**30])
async def test_a_snapshot_sequence_out_of_range_is_refused(
    open_app: OpenApp, sequence: object
) -> None:
    async with open_app() as app:
        with pytest.raises(calliope.InvalidArgumentError, match="sequence must be an int"):
            await app.snapshots.save_snapshot("free", Cart(), sequence=sequence)  # type: ignore[arg-type]
        assert await app.snapshots.load_snapshot("free", Cart) is None


def _race_first_writes(directory: Path) -> list[str]:
    """Write a new id as plain and as replicated at once, from two threads;
    the kinds refused."""
    from calliope.adapters.files.stream_kind import check_kind

    start = threading.Barrier(2)
    refused: list[str] = []

    def first_write(replica_id: str | None) -> None:
        start.wait()
        try:
            check_kind(str(directory), "s", replica_id)
        except calliope.InvalidArgumentError:
            refused.append("replicated" if replica_id else "plain")

    threads = [threading.Thread(target=first_write, args=(r,)) for r in (None, "a")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return refused


def test_two_writers_of_a_new_id_as_two_kinds_cannot_both_win(tmp_path: Path) -> None:
    """Processes that never met agree: of two first writers, one plain and
    one replicated, racing on a new id, exactly one is refused."""
    for n in range(40):
        directory = tmp_path / f"stream-{n}"
        directory.mkdir()
        assert len(_race_first_writes(directory)) == 1, n


@pytest.mark.parametrize("replica", ["x" * 5000, "\udc80"])
async def test_a_hand_edited_default_replica_id_is_checked(tmp_path: Path, replica: str) -> None:
    root = tmp_path / "data"
    async with calliope.open(root):
        pass
    meta = root / "calliope.json"
    content = json.loads(meta.read_text())
    content["default_replica_id"] = replica
    meta.write_text(json.dumps(content))
    with pytest.raises(calliope.StorageError, match=r"calliope\.json"):
        async with calliope.open(root):
            pass
