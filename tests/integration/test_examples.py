"""The demo (``calliope demo``, through the console script) and the
examples run from a fresh directory and show what they promise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.postgres import postgres_dsn

ROOT = Path(__file__).resolve().parents[2]


def run(module: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=None if env is None else {**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def calliope_demo(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``calliope demo ARGUMENTS`` through the installed console script, from
    a directory that is not the checkout (it needs nothing from there)."""
    script = shutil.which("calliope", path=str(Path(sys.executable).parent))
    assert script is not None, "the console script is installed with the package"
    return subprocess.run(
        [script, "demo", *arguments],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_demo_runs_the_cart_end_to_end() -> None:
    result = calliope_demo()
    assert result.returncode == 0, result.stderr
    check_demo(result.stdout)
    assert "temporary directory has been removed" in result.stdout


def test_the_demo_keeps_a_directory_it_is_given(tmp_path: Path) -> None:
    store = tmp_path / "shop"
    result = calliope_demo(str(store))
    assert result.returncode == 0, result.stderr
    check_demo(result.stdout)
    assert f"the store is kept in {store}" in result.stdout
    assert (store / "calliope.json").exists()
    again = calliope_demo(str(store))  # the story needs an empty store
    assert again.returncode == 1
    assert again.stderr.startswith("Error: the demo needs a new or empty directory")
    assert len(again.stderr.splitlines()) == 1


def test_the_demo_runs_on_postgresql_too() -> None:
    """`make demo DSN=...`: every process of the demo shares only the server."""
    result = calliope_demo(postgres_dsn())
    assert result.returncode == 0, result.stderr
    check_demo(result.stdout)
    assert "has been dropped" in result.stdout


def check_demo(out: str) -> None:
    assert "a stale writer is refused" in out
    assert "replayed 1 event(s)" in out
    assert "same as a full replay: True" in out
    assert out.count("from phone-app") == 3
    assert "(checked out)" in out
    assert out.count("CONFLICT with") == 2  # the phone is told of 1 edit, the tablet of 2
    assert (
        "resolved [2 x apples, 1 x bread] vs [3 x apples, 1 x bread] vs [1 x bread, 1 x pears]"
        in out
    )
    finals = [line for line in out.splitlines() if "$ show" in line]
    assert len(finals) == 4
    assert all(line.endswith("cart [3 x apples, 1 x bread, 1 x pears]") for line in finals), finals
    counted = [line for line in out.splitlines() if ": views=600, visitors so far=" in line]
    assert len(counted) == 3  # each process waited until all 600 increments arrived
    assert "web-shop: views=600 (= 3 x 200)" in out
    assert "visitors=['berlin', 'lagos', 'lima']" in out
    assert "ReplicationTimeout: 1 of 3 replicas had it" in out
    assert "views=602, applied by 3 replicas" in out
    assert "cart-7: [1 x figs, 3 x pears]; shared-cart: [3 x apples, 1 x bread, 1 x pears]" in out
    assert "folded 1 new event(s)" in out and "cart-7 is now [3 x pears]" in out


def test_the_cart_totals_projection_folds_only_what_is_new(tmp_path: Path) -> None:
    def totals() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "calliope.demo.cart_totals", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    writer = [sys.executable, "-m", "calliope.demo.cart_writer", str(tmp_path), "cart-1"]
    subprocess.run(writer, cwd=ROOT, check=True, timeout=120, capture_output=True)
    first = totals()
    assert first.startswith("cart-1: [")
    assert totals() == first


def test_the_core_tour_runs() -> None:
    out = run("examples.core_tour")
    assert "compare: CONCURRENT" in out
    assert "pending 0" in out
