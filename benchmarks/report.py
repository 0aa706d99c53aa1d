"""Printing benchmark figures beside their same-run baselines."""

from __future__ import annotations

import time
from collections.abc import Callable


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
