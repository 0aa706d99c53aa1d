"""``app.replicator`` on the file store and on PostgreSQL, each replica its
own OS process (on PostgreSQL each a "machine": nothing shared but the
server and the test's barrier files).

The processes run tests/integration/replicator_worker.py (its docstring
lists the modes). Waits are generous (the machine may be slow); nothing
here sleeps to make an assertion true: every wait is for an event (a line
printed, a process exiting) with a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import file_or_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["file", "postgres"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store the processes share: a directory, or a fresh PostgreSQL schema."""
    with file_or_postgres(request.param, tmp_path) as store:
        yield store


TIMEOUT = 180.0
"""The longest a worker may take (seconds)."""


class Worker:
    """One worker process; a thread collects its stdout lines as they come."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.replicator_worker", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []  # complete lines only (ending in a newline)
        self.partial = ""
        self.stderr = ""
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read_out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.endswith("\n"):
                self.lines.append(line[:-1])
            else:
                self.partial = line

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    def wait_for_lines(self, count: int, timeout: float = TIMEOUT) -> None:
        """Until the worker printed ``count`` lines (fails if it exits first)."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            if self.process.poll() is not None:
                self._out.join(timeout=10)
                if len(self.lines) >= count:
                    return
                self._err.join(timeout=10)
                pytest.fail(
                    f"worker {self.args} exited ({self.process.returncode}) after "
                    f"{len(self.lines)} of {count} lines: {self.stderr}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.args} printed {len(self.lines)} of {count} lines")
            time.sleep(0.01)

    def finish(self, timeout: float = TIMEOUT) -> list[str]:
        """Wait for a clean exit; every line printed."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"worker {self.args} did not finish within {timeout}s")
        self._out.join(timeout=10)
        self._err.join(timeout=10)
        assert self.process.returncode == 0, f"worker {self.args} failed:\n{self.stderr}"
        return self.lines

    def result(self, timeout: float = TIMEOUT) -> Any:
        """The one JSON line a worker prints before it exits."""
        lines = self.finish(timeout)
        assert len(lines) == 1, lines
        return json.loads(lines[0])

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._out.join(timeout=10)
        self._err.join(timeout=10)


Spawn = Callable[..., Worker]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start workers; any still running at the end of the test is killed."""
    started: list[Worker] = []

    def start(*args: str) -> Worker:
        worker = Worker(*args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


# -- a. GCounter --------------------------------------------------------------


def test_three_processes_of_increments_converge_and_a_fourth_sees_the_total(
    tmp_path: Path, spawn: Spawn, root: str
) -> None:
    each, replicas = 2000, ["p0", "p1", "p2"]
    total = each * len(replicas)
    writers = [spawn("increment", root, r, "hits", str(each), str(total)) for r in replicas]
    watcher = spawn("increment", root, "p3", "hits", "0", str(total))
    for worker in [*writers, watcher]:
        assert worker.result()["value"] == total


# -- b. ORSet -----------------------------------------------------------------


def test_concurrent_orset_add_and_remove_converge_to_add_wins(
    tmp_path: Path, spawn: Spawn, root: str
) -> None:
    contested = [f"c{i}" for i in range(10)]  # re-added by p0 while p1 removes them
    doomed = [f"r{i}" for i in range(5)]  # only removed (by p1, having seen them)
    fresh = ["n0", "n1"]  # added by p0, removed by nobody
    seed = spawn(
        "orset", root, "seed", "set", str(tmp_path / "b0"), "seed",
        ",".join(contested + doomed), "",
    )  # fmt: skip
    assert seed.result()["value"] == sorted(contested + doomed)

    barrier, parties = str(tmp_path / "b1"), "p0,p1"
    adder = spawn("orset", root, "p0", "set", barrier, parties, ",".join(contested + fresh), "")
    remover = spawn("orset", root, "p1", "set", barrier, parties, "", ",".join(contested + doomed))
    added, removed = adder.result(), remover.result()

    # What each update saw when it was prepared: the adder, whether the remove
    # had reached it (the element absent); the remover, whether the re-add had
    # (a dot of p0 among the element's).
    assert all(removed["seen"][f"remove {element}"]["present"] for element in doomed)
    concurrent = []
    expected = set(fresh)
    for element in contested:
        adder_saw_remove = not added["seen"][f"add {element}"]
        saw = removed["seen"][f"remove {element}"]
        remover_saw_add = any(r == "p0" for r, _ in saw["dots"])
        assert not (adder_saw_remove and remover_saw_add)  # causality
        if not remover_saw_add:
            expected.add(element)  # concurrent add wins; a later add is there too
        if not adder_saw_remove and not remover_saw_add:
            concurrent.append(element)
    assert concurrent, "no add was concurrent with the remove: the test proves nothing"
    assert set(contested) <= expected
    assert added["value"] == removed["value"] == sorted(expected)

    # A fresh process reads the same set (p0 and p1 passed that barrier already).
    reader = spawn("orset", root, "p2", "set", barrier, "p0,p1,p2", "", "")
    assert reader.result()["value"] == sorted(expected)


# -- c. RGA -------------------------------------------------------------------


def test_rga_text_typed_by_two_processes_at_once_converges(
    tmp_path: Path, spawn: Spawn, root: str
) -> None:
    barrier, parties, size = str(tmp_path / "b"), "p0,p1", 150
    texts = {
        "p0": "".join(chr(0x4E00 + i) for i in range(size)),
        "p1": "".join(chr(0x4E00 + 1000 + i) for i in range(size)),
    }
    typists = {
        replica: spawn("rga", root, replica, "doc", barrier, parties, text, str(2 * size))
        for replica, text in texts.items()
    }
    values = {replica: worker.result()["value"] for replica, worker in typists.items()}
    assert values["p0"] == values["p1"]
    final = values["p0"]
    assert sorted(final) == sorted(texts["p0"] + texts["p1"])
    for text in texts.values():
        assert "".join(c for c in final if c in text) == text
    # The typists did type at once: some of each one's text is between the other's.
    first_p0 = min(i for i, c in enumerate(final) if c in texts["p0"])
    first_p1 = min(i for i, c in enumerate(final) if c in texts["p1"])
    last_p0 = max(i for i, c in enumerate(final) if c in texts["p0"])
    last_p1 = max(i for i, c in enumerate(final) if c in texts["p1"])
    assert first_p0 < last_p1 and first_p1 < last_p0, "the typing was not concurrent"


# -- d. ReplicationTimeout ----------------------------------------------------


def test_an_update_needing_three_replicas_waits_for_a_third_process(
    tmp_path: Path, spawn: Spawn, root: str
) -> None:
    second = spawn("hold", root, "b", "quorum", str(tmp_path / "stop-b"))
    second.wait_for_lines(1)
    assert second.lines[0] == "ready"

    refused = spawn("need", root, "a", "quorum", "3", "2").result()
    assert refused == {"ok": False, "acknowledged": 2, "required": 3}

    third = spawn("hold", root, "c", "quorum", str(tmp_path / "stop-c"))
    third.wait_for_lines(1)
    accepted = spawn("need", root, "a", "quorum", "3", "60").result()
    # The refused update was durable all the same: this one counts on from it.
    assert accepted == {"ok": True, "value": 2}

    second.close_stdin()  # one stops when its stdin closes, the other when a file appears
    (tmp_path / "stop-c").touch()
    assert second.finish() == ["ready"]
    assert third.finish() == ["ready"]


# -- e. a SIGKILLed replica ---------------------------------------------------


def test_a_killed_replica_loses_no_acknowledged_increment(
    tmp_path: Path, spawn: Spawn, root: str
) -> None:
    others = 300
    victim = spawn("acked", root, "p0", "hits")
    other = spawn("increment", root, "p1", "hits", str(others), str(others))
    victim.wait_for_lines(100)
    victim.kill()  # SIGKILL, in the middle of its updates
    assert victim.process.returncode == -9
    acks = [json.loads(line) for line in victim.lines]
    assert [a["n"] for a in acks] == list(range(1, len(acks) + 1))
    acknowledged = len(acks)
    assert other.result()["value"] >= others

    # Restarted, it starts from everything that was acknowledged (and perhaps
    # the one update in flight when it was killed) plus the other's writes.
    more = 100
    least = acknowledged + others + more
    restarted = spawn("increment", root, "p0", "hits", str(more), str(least)).result()
    assert acknowledged + others <= restarted["start"] <= acknowledged + others + 1
    assert restarted["value"] == restarted["start"] + more
    fresh = spawn("increment", root, "p2", "hits", "0", str(least)).result()
    assert fresh["start"] == fresh["value"] == restarted["value"]
