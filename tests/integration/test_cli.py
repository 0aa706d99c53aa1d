"""The ``calliope`` command, run through its console script in a subprocess."""

from __future__ import annotations

import json
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
from tests.postgres import fresh_schema, postgres_dsn


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
    if request.param == "file":
        yield str(tmp_path / "store")
        return
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        yield f"{dsn}?schema={schema}"


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
    usage = run("show", str(tmp_path), "s", "--from", "0")
    assert usage.returncode == 2
    module = subprocess.run(
        [sys.executable, "-m", "calliope", "--help"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and "streams" in module.stdout and "show" in module.stdout


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
    assert table.startswith("replica\tstate\theartbeat_age_s\nberlin\tstopped\t")


async def test_verify_reads_everything_and_names_damage(target: str) -> None:
    async with calliope.open(target, replica_id="writer") as app:
        for n in range(20):
            await app.journal.event_stream(f"cart-{n % 4}", Added).persist(Added(str(n)))
        await app.replicator.update("views", GCounter, lambda c: c.increment())
    intact = run("verify", target)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("intact: 5 streams, 21 events, 21 feed batches")
    if target.startswith("postgresql"):
        return  # (PostgreSQL keeps its own data intact: nothing to flip here)
    segment = sorted(Path(target).glob("streams/*/*/log/*.seg"))[0]
    data = bytearray(segment.read_bytes())
    data[40] ^= 0xFF  # inside the first frame's payload: its checksum no longer holds
    segment.write_bytes(bytes(data))
    damaged = run("verify", target)
    assert damaged.returncode == 3
    assert damaged.stderr.startswith("damage: journal file ")
    assert str(segment) in damaged.stderr and "offset 16" in damaged.stderr
