"""The ``calliope`` command, run through its console script in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import calliope
from calliope import GCounter
from tests.postgres import file_or_postgres
from tests.support import flip_byte


@calliope.event_type("cli.added")
@attrs.frozen
class Added:
    sku: str
    blob: bytes = b""


def calliope_command() -> list[str]:
    found = shutil.which("calliope", path=str(Path(sys.executable).parent))
    assert found is not None, "the console script is installed with the package"
    return [found]


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*calliope_command(), *arguments], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(params=["file", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with file_or_postgres(request.param, tmp_path) as store:
        yield store


async def test_streams_and_show_print_what_the_store_holds(target: str) -> None:
    async with calliope.open(target, replica_id="writer") as app:
        await app.journal.event_stream("cart-1", Added).persist_all(
            [Added("a", b"\x00\x01"), Added("b")]
        )
        await app.journal.replicated_event_stream("shared", Added).persist(Added("r"))
    listed = run("streams", target)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "stream\tkind\tevents\treplicas"
    assert sorted(lines[1:]) == ["cart-1\tplain\t2\t-", "shared\treplicated\t1\twriter"]
    as_json = run("streams", target, "--json", "--prefix", "cart")
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [
        {"stream": "cart-1", "kind": "plain", "events": 2, "replicas": []}
    ]
    shown = run("show", target, "cart-1")
    events = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [e["sequence"] for e in events] == [1, 2]
    assert events[0]["type"] == "cli.added"
    assert events[0]["data"] == {"sku": "a", "blob": {"$bytes": "AAE="}}
    assert [
        json.loads(line)["sequence"]
        for line in run("show", target, "cart-1", "--from", "2").stdout.splitlines()
    ] == [2]
    replicated = run("show", target, "shared")
    assert [json.loads(line)["replica"] for line in replicated.stdout.splitlines()] == ["writer"]


def test_errors_are_one_line_and_an_exit_code(tmp_path: Path) -> None:
    missing = run("streams", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "a-file").write_text("not a store")
    a_file = run("verify", str(tmp_path / "a-file"))
    assert a_file.returncode == 1 and "a-file is not a directory" in a_file.stderr
    usage = run("show", str(tmp_path), "s", "--from", "0")
    assert usage.returncode == 2
    module = subprocess.run(
        [sys.executable, "-m", "calliope", "--help"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and "streams" in module.stdout and "show" in module.stdout


def answered_on_a_terminal(arguments: list[str], answer: str) -> tuple[int, str]:
    """Run ``calliope ARGUMENTS`` with a terminal for its stdin and stdout,
    type ``answer``; its exit code and what it showed."""
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [*calliope_command(), *arguments], stdin=secondary, stdout=secondary, stderr=secondary
        )
        os.close(secondary)
        os.write(primary, answer.encode())
        shown = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(primary, 65536):
                shown += chunk
        return process.wait(timeout=60), shown.decode()
    finally:
        os.close(primary)


class _Lines:
    """The lines a process prints, collected by a thread: a test waits for
    the next one with a deadline instead of hanging."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout

        def collect() -> None:
            for line in stdout:
                self._queue.put(line)

        threading.Thread(target=collect, daemon=True).start()

    def next(self, seconds: float = 30) -> str:
        try:
            return self._queue.get(timeout=seconds)
        except queue.Empty:
            raise AssertionError(f"nothing printed within {seconds} s") from None


async def test_feed_and_tail_print_and_follow(target: str) -> None:
    async with calliope.open(target, replica_id="writer") as app:
        await app.journal.event_stream("cart-1", Added).persist_all([Added("a"), Added("b")])
        await app.journal.event_stream("cart-2", Added).persist(Added("c"))
    fed = [json.loads(line) for line in run("feed", target).stdout.splitlines()]
    assert [e["data"]["sku"] for e in fed] == ["a", "b", "c"]
    resumed = run("feed", target, "--after", fed[0]["position"]).stdout.splitlines()
    assert [json.loads(line)["data"]["sku"] for line in resumed] == ["b", "c"]
    tailed = run("tail", target, "cart-1", "--from", "2").stdout.splitlines()
    assert [json.loads(line)["data"]["sku"] for line in tailed] == ["b"]
    assert run("feed", target, "--after", "nonsense").returncode == 2
    following = subprocess.Popen(
        [*calliope_command(), "feed", target, "-f"], stdout=subprocess.PIPE, text=True
    )
    lines = _Lines(following)
    try:
        for _ in range(3):
            lines.next()  # what was there
        async with calliope.open(target, replica_id="later") as app:
            await app.journal.event_stream("cart-3", Added).persist(Added("live"))
        assert json.loads(lines.next())["data"]["sku"] == "live"
    finally:
        following.send_signal(signal.SIGINT)
        following.wait(timeout=30)
    assert following.returncode in (0, 1, -signal.SIGINT)


async def test_replicas_lists_heartbeats_and_progress(target: str) -> None:
    async with calliope.open(target, replica_id="berlin") as app:
        await app.replicator.update("views", GCounter, lambda c: c.increment(3))
        await app.replicator.update("views", GCounter, lambda c: c.increment())
    listed = run("replicas", target, "--json")
    assert listed.returncode == 0, listed.stderr
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    beats = [r for r in records if "state" in r]
    assert [(b["replica"], b["state"]) for b in beats] == [("berlin", "stopped")]
    assert beats[0]["heartbeat_age_s"] >= 0
    assert [r for r in records if "key" in r] == [
        {"key": "views", "replica": "berlin", "applied": 2}
    ]
    table = run("replicas", target).stdout
    assert table.startswith("# replicas\nreplica\tstate\theartbeat_age_s\nberlin\tstopped\t")
    assert "# applied per key\nkey\treplica\tapplied\nviews\tberlin\t2\n" in table


async def test_verify_reads_everything_and_names_damage(target: str) -> None:
    async with calliope.open(target, replica_id="writer") as app:
        for n in range(20):
            await app.journal.event_stream(f"cart-{n % 4}", Added).persist(Added(str(n)))
        await app.replicator.update("views", GCounter, lambda c: c.increment())
        await app.snapshots.save_snapshot("cart-0", Added("snap"), sequence=5)
    intact = run("verify", target)
    assert intact.returncode == 0, intact.stderr
    # (the replicator keeps a snapshot of the key's state too)
    assert intact.stdout == "intact: 5 streams, 21 events, 21 feed batches, 2 snapshots\n"
    if target.startswith("postgresql"):
        return  # (PostgreSQL keeps its own data intact: nothing to flip here)
    segments = sorted(Path(target).glob("streams/*/*/log/*.seg"))
    for segment in segments[:2]:
        flip_byte(segment, 40)  # inside the first frame's payload: its checksum no longer holds
    damaged = run("verify", target)
    assert damaged.returncode == 3
    logs = [line for line in damaged.stderr.splitlines() if line.startswith("damage: cart-")]
    assert len(logs) == 2  # every damaged log, not only the first
    for segment in segments[:2]:
        assert f"journal file {segment}" in damaged.stderr
    assert "offset 16" in damaged.stderr
    assert f"`calliope repair {target}`" in damaged.stdout


async def test_verify_names_a_damaged_snapshot(tmp_path: Path) -> None:
    target = str(tmp_path / "store")
    async with calliope.open(target) as app:
        await app.snapshots.save_snapshot("cart-0", Added("old"), sequence=1)
        await app.snapshots.save_snapshot("cart-0", Added("new"), sequence=2)
    newest = sorted(Path(target).glob("snapshots/*/*/*.snap"))[-1]
    flip_byte(newest, -3)
    damaged = run("verify", target)
    assert damaged.returncode == 3
    assert damaged.stderr == (
        f"damage: {newest}: snapshot of 'cart-0' is damaged (checksum, length or format); "
        "loads pass over it, to an older intact snapshot or (if none) to no snapshot, so the "
        "state is folded from the events again\n"
    )
    repaired = run("repair", target, "--yes")  # (not its to mend: it says so)
    assert repaired.returncode == 3
    assert "does not mend" in repaired.stderr


async def test_repair_says_what_it_will_do_asks_and_moves_damage_aside(tmp_path: Path) -> None:
    target = str(tmp_path / "store")
    async with calliope.open(target, replica_id="writer") as app:
        cart = app.journal.event_stream("cart-1", Added)
        for n in range(5):
            await cart.persist(Added(str(n)))
    assert run("repair", target).stdout.startswith("nothing to repair: 1 streams, 5 events")
    segment = next(Path(target).glob("streams/*/*/log/*.seg"))
    flip_byte(segment, -5)  # inside the last frame: events 1-4 stay readable
    code, shown = answered_on_a_terminal(["repair", target], "n\n")
    assert code == 1
    assert "1 damaged log(s):\r\n  cart-1: journal file " in shown
    assert "Repair them? [y/N]" in shown
    assert run("verify", target).returncode == 3  # nothing was changed
    unasked = subprocess.run(  # no terminal to ask on, no --yes: nothing done
        [*calliope_command(), "repair", target], input="y\n", capture_output=True, text=True
    )
    assert unasked.returncode == 1
    assert "there is no terminal to ask on; pass --yes" in unasked.stderr
    assert run("verify", target).returncode == 3
    done = run("repair", target, "--yes")
    assert done.returncode == 0, done.stderr
    assert (
        "repaired cart-1: keeps sequences 1..4; every event after 4 is lost to readers"
        in done.stdout
    )
    assert "intact now: 1 streams, 4 events" in done.stdout
    async with calliope.open(target, replica_id="writer") as app:
        cart = app.journal.event_stream("cart-1", Added)
        assert [e.event.sku for e in await cart.query().to_list()] == ["0", "1", "2", "3"]
        assert (await cart.persist(Added("next"))).sequence == 5


async def test_projections_lists_names_positions_and_what_is_behind(target: str) -> None:
    def total(count: int, event: Added) -> int:
        return count + 1

    async with calliope.open(target, replica_id="writer") as app:
        cart = app.journal.event_stream("cart-1", Added)
        await cart.persist_all([Added("a"), Added("b"), Added("c")])
        counted = app.projection("counted", Added, total, 0)
        await counted.catch_up()
        await cart.persist_all([Added("d"), Added("e")])
        await app.projection("never-run", Added, total, 0).catch_up()  # (folds all 5)
        await cart.persist(Added("f"))
    listed = run("projections", target, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["projection"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert set(rows) == {"counted", "never-run"}
    assert rows["counted"]["position"] == str(counted.position)
    assert rows["counted"]["feed_events_after"] == 3
    assert rows["never-run"]["feed_events_after"] == 1
    assert rows["counted"]["state_type"] == "builtins.int"
    plain = run("projections", target).stdout.splitlines()
    assert plain[0] == "projection\tposition\tsaved\tstate_type\tfeed_events_after"
    assert [line.split("\t")[0] for line in plain[1:]] == ["counted", "never-run"]


async def test_show_since_a_sequence_or_a_version(target: str) -> None:
    async with calliope.open(target, replica_id="laptop") as app:
        await app.journal.event_stream("cart-1", Added).persist_all(
            [Added("a"), Added("b"), Added("c")]
        )
        shared = app.journal.replicated_event_stream("shared", Added)
        await shared.persist(Added("l1"))
        await shared.persist(Added("l2"))
    async with calliope.open(target, replica_id="phone") as app:
        await app.journal.replicated_event_stream("shared", Added).persist(Added("p1"))

    def skus(*arguments: str) -> list[str]:
        shown = run("show", target, *arguments)
        assert shown.returncode == 0, shown.stderr
        return [json.loads(line)["data"]["sku"] for line in shown.stdout.splitlines()]

    assert skus("cart-1", "--since", "1") == ["b", "c"]
    assert skus("shared", "--since", "laptop:1") == ["l2", "p1"]
    assert skus("shared", "--since", "laptop:2,phone:1") == []
    bad = run("show", target, "shared", "--since", "laptop")
    assert bad.returncode == 2 and "laptop:3,phone:1" in bad.stderr


def test_listings_are_tables_on_a_terminal(tmp_path: Path) -> None:
    target = str(tmp_path / "store")
    assert run("demo", target).returncode == 0
    primary, secondary = pty.openpty()
    try:
        process = subprocess.run(
            [*calliope_command(), "streams", target],
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=60,
            env={**os.environ, "COLUMNS": "120"},
        )
        assert process.returncode == 0, process.stderr
        os.close(secondary)
        drawn = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(primary, 65536):
                drawn += chunk
    finally:
        os.close(primary)
    text = drawn.decode()
    assert text.startswith("┏━") and "┃" in text and "stream" in text
    assert "shared-cart" in text and "replicated" in text
    assert "\t" not in text
