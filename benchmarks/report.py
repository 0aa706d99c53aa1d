"""Printing benchmark figures beside their same-run baselines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def rate(count: int, seconds: float) -> float:
    """Items per second (guarding against a zero duration)."""
    return count / max(seconds, 1e-9)


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action()`` takes, by the monotonic performance counter."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def row(name: str, figure: float, unit: str, baseline: float, baseline_name: str) -> str:
    """One line: the figure, the baseline and the ratio figure/baseline."""
    ratio = figure / baseline if baseline else float("nan")
    return (
        f"{name:<44} {figure:>14,.0f} {unit:<10} "
        f"baseline {baseline:>14,.0f} ({baseline_name})  ratio {ratio:5.2f}x"
    )


def header(title: str) -> None:
    print(f"\n== {title}")


def replay_in_child(module: str, directory: str) -> dict[str, Any]:
    """Run ``python -m module --replay-child directory`` in a fresh process
    (so its peak RSS is the replay's own) and return the JSON it prints:
    ``events``, ``seconds``, ``raw_seconds``, ``rss_growth_kib``."""
    child = subprocess.run(
        [sys.executable, "-m", module, "--replay-child", directory],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(child.stdout)
    return result


def replay_rows(name: str, result: dict[str, Any], fill_note: str) -> None:
    """Print a replay figure beside its raw read+decode baseline, and its RSS."""
    print(
        row(
            name,
            rate(result["events"], result["seconds"]),
            "events/s",
            rate(result["events"], result["raw_seconds"]),
            "read+parse+msgpack",
        )
    )
    print(f"    peak RSS growth during replay: {result['rss_growth_kib'] / 1024:.1f} MiB")
    print(f"    ({fill_note})")
