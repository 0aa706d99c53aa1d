"""The demo and examples run from a fresh directory and show what they promise."""

from __future__ import annotations

import os
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


def test_the_demo_runs_the_cart_end_to_end() -> None:
    check_demo(run("examples.demo"))


def test_the_demo_runs_on_postgresql_too() -> None:
    """`make demo DSN=...`: every process of the demo shares only the server."""
    out = run("examples.demo", {"CALLIOPE_DEMO_DSN": postgres_dsn()})
    check_demo(out)
    assert "has been dropped" in out


def check_demo(out: str) -> None:
    assert "a stale writer is refused" in out
    assert "replayed 1 event(s)" in out
    assert "same as a full replay: True" in out
    assert out.count("from phone-app") == 3
    assert "(checked out)" in out
    assert out.count("CONFLICT with") == 1
    assert "resolved [2 x apples, 1 x bread] vs [3 x apples, 1 x bread]" in out
    finals = [line for line in out.splitlines() if "$ show" in line]
    assert len(finals) == 3
    assert all(line.endswith("cart [3 x apples, 1 x bread]") for line in finals), finals
    counted = [line for line in out.splitlines() if ": views=600, visitors so far=" in line]
    assert len(counted) == 3  # each process waited until all 600 increments arrived
    assert "web-shop: views=600 (= 3 x 200)" in out
    assert "visitors=['berlin', 'lagos', 'lima']" in out
    assert "ReplicationTimeout: 1 of 3 replicas had it" in out
    assert "views=602, applied by 3 replicas" in out
    assert "cart-7: [1 x figs, 3 x pears]; shared-cart: [3 x apples, 1 x bread]" in out
    assert "folded 1 new event(s)" in out and "cart-7 is now [3 x pears]" in out


def test_the_cart_totals_projection_folds_only_what_is_new(tmp_path: Path) -> None:
    def totals() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "examples.cart_totals", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    writer = [sys.executable, "-m", "examples.cart_writer", str(tmp_path), "cart-1"]
    subprocess.run(writer, cwd=ROOT, check=True, timeout=120, capture_output=True)
    first = totals()
    assert first.startswith("cart-1: [")
    assert totals() == first


def test_the_core_tour_runs() -> None:
    out = run("examples.core_tour")
    assert "compare: CONCURRENT" in out
    assert "pending 0" in out
