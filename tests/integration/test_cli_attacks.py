"""What a hostile newcomer found wrong with the ``calliope`` command and the
demo, each as a test through the console script."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import calliope
from tests.integration.test_cli import Added, calliope_command, run
from tests.postgres import fresh_schema, postgres_dsn
from tests.support import flip_byte


async def test_tail_points_a_replicated_stream_to_show_and_refuses_a_missing_one(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "store")
    async with calliope.open(store, replica_id="laptop") as app:
        await app.journal.replicated_event_stream("shared", Added).persist(Added("a"))
    replicated = run("tail", store, "shared")
    assert replicated.returncode == 1
    assert f"`calliope show {store} shared` prints each replica's log" in replicated.stderr
    assert "app.journal" not in replicated.stderr  # (CLI advice, not the library's)
    missing = run("tail", store, "nothing")
    assert missing.returncode == 1 and "has no stream 'nothing'" in missing.stderr
    for command in ("show", "tail"):
        empty = run(command, store, "")
        assert empty.returncode == 2 and "stream id" in empty.stderr
        long = run(command, store, "x" * 2_000)
        assert long.returncode == 2 and len(long.stderr) < 1_000  # (not echoed whole)


async def test_plain_and_json_output_survive_odd_ids_and_floats(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    async with calliope.open(store) as app:
        await app.journal.event_stream("tab\there\nnewline", Added).persist(Added("a"))
        await app.snapshots.save_snapshot("s", Added("x"), sequence=1)
        stream = app.journal.event_stream("floats", dict)
        await stream.persist({"nan": math.nan, "inf": -math.inf, "ok": 1.5})
    lines = run("streams", store).stdout.splitlines()
    assert "tab\\there\\nnewline\tplain\t1\t-" in lines  # one row, escaped
    assert len(lines) == 3
    shown = run("show", store, "floats").stdout.splitlines()
    data = json.loads(shown[0])["data"]  # strict JSON: no bare NaN
    assert data == {"nan": {"$float": "nan"}, "inf": {"$float": "-inf"}, "ok": 1.5}


async def test_verify_names_a_missing_calliope_json(tmp_path: Path) -> None:
    store = tmp_path / "store"
    async with calliope.open(store) as app:
        await app.journal.event_stream("cart-1", Added).persist(Added("a"))
    (store / "calliope.json").unlink()
    verified = run("verify", str(store))
    assert verified.returncode == 3
    assert f"damage: {store / 'calliope.json'} is missing" in verified.stderr


async def test_verify_finds_missing_sequences_on_postgresql() -> None:
    import psycopg

    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        target = f"{dsn}?schema={schema}"
        async with calliope.open(target) as app:
            cart = app.journal.event_stream("cart-1", Added)
            for n in range(5):
                await cart.persist(Added(str(n)))
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(f'DELETE FROM "{schema}".batches WHERE first_sequence = 3')
        verified = run("verify", target)
        assert verified.returncode == 3
        assert "stream 'cart-1' is missing sequences 3..3" in verified.stderr
        repaired = run("repair", target, "--yes")  # (only a backup has them)
        assert repaired.returncode == 3
        assert "does not mend (above); restore what it names from a backup" in repaired.stderr
        assert "repaired cart-1: keeps" not in repaired.stdout


async def test_a_projection_whose_snapshots_are_all_damaged_is_still_listed(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    async with calliope.open(store) as app:
        await app.journal.event_stream("cart-1", Added).persist(Added("a"))
        await app.projection("counted", Added, lambda n, e: n + 1, 0).catch_up()
    for snapshot in store.glob("snapshots/*/*/*.snap"):
        flip_byte(snapshot, -3)
    listed = run("projections", str(store), "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["projection"] == "counted" and row["position"] is None
    assert row["state_type"] == "damaged: folds again from the start"


def test_the_demo_refuses_what_it_cannot_use_in_one_line(tmp_path: Path) -> None:
    empty = run("demo", "")
    assert empty.returncode == 1 and "the demo's target is empty" in empty.stderr
    if os.geteuid() != 0:  # (root reads any directory)
        locked = tmp_path / "locked"
        locked.mkdir(mode=0)
        refused = run("demo", str(locked))
        assert refused.returncode == 1 and "Traceback" not in refused.stderr


def test_the_demo_keeps_a_schema_it_is_given_and_refuses_a_used_one() -> None:
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        first = run("demo", f"{dsn}?schema={schema}")
        assert first.returncode == 0, first.stderr
        assert f"the store is kept in schema {schema}" in first.stdout
        listed = run("streams", f"{dsn}?schema={schema}")
        assert "shared-cart\treplicated" in listed.stdout
        again = run("demo", f"{dsn}?schema={schema}")
        assert again.returncode == 1 and "needs a new or empty schema" in again.stderr


def test_ctrl_c_stops_the_demo_without_tracebacks(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*calliope_command(), "demo", str(tmp_path / "shop")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(2.5)  # (its replica processes are running by now)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    _, errors = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "Traceback" not in errors, errors


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--log", "/nonexistent/dir/x.log"], "cannot write /nonexistent/dir/x.log"),
        (["--json", "--markdown"], "give one of --json and --markdown"),
    ],
)
def test_bench_refuses_bad_options_in_one_line(arguments: list[str], said: str) -> None:
    result = run("bench", "--quick", "--only", "snapshots", *arguments)
    assert result.returncode == 2 and said in result.stderr
    assert "Traceback" not in result.stderr


async def test_odd_targets_ranges_and_damage_have_their_exit_codes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    async with calliope.open(store) as app:
        await app.journal.event_stream("cart-1", Added).persist_all([Added("a"), Added("b")])
    memory = run("streams", "memory://x")
    assert memory.returncode == 2 and "lives inside the process" in memory.stderr
    backwards = run("show", str(store), "cart-1", "--from", "5", "--to", "3")
    assert backwards.returncode == 2 and "--to 3 is before --from 5" in backwards.stderr
    (segment,) = store.glob("streams/*/*/log/*.seg")
    flip_byte(segment, -3)
    for arguments in (["show", str(store), "cart-1"], ["feed", str(store)]):
        damaged = run(*arguments)
        assert damaged.returncode == 3, arguments  # damage, as verify says it
        assert damaged.stderr.startswith("damage: journal file ")
