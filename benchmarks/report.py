"""Printing benchmark figures beside their same-run baselines."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
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


def row(
    name: str,
    figure: float,
    unit: str,
    baseline: float,
    baseline_name: str,
    *,
    decimals: int = 0,
) -> str:
    """One line: the figure, the baseline and the ratio figure/baseline
    (``decimals`` places for figures that are small numbers, like ms or %)."""
    ratio = figure / baseline if baseline else float("nan")
    record(name, figure, unit, baseline, baseline_name, ratio)
    return (
        f"{name:<44} {figure:>14,.{decimals}f} {unit:<10} "
        f"baseline {baseline:>14,.{decimals}f} ({baseline_name})  ratio {ratio:5.2f}x"
    )


RECORDS = "CALLIOPE_BENCH_RECORDS"
"""Where ``calliope bench`` asks each figure to be recorded as well: the
path of a file to which :func:`record` appends one JSON line per figure."""


def record(
    name: str, figure: float, unit: str, baseline: float, baseline_name: str, ratio: float
) -> None:
    """Append one figure to the file named by ``$CALLIOPE_BENCH_RECORDS``
    (nothing when it is unset): the module that measured it, the figure, its
    same-run baseline and their ratio. ``calliope bench`` makes its table
    from these lines."""
    path = os.environ.get(RECORDS)
    if not path:
        return
    module = sys.modules["__main__"].__spec__
    line = {
        "module": module.name if module is not None else sys.argv[0],
        "name": name,
        "figure": figure,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio,
    }
    with open(path, "a", encoding="utf-8") as records:
        records.write(json.dumps(line) + "\n")


def target(what: str, figure: float, limit: float, unit: str) -> str:
    """An indented line under a row: the target ``what < limit unit`` and
    whether this run's figure meets it (printed, never asserted)."""
    verdict = "met" if figure < limit else "missed"
    return f"    target: {what} < {limit:g} {unit}: {verdict} ({figure:,.1f} {unit})"


def header(title: str) -> None:
    print(f"\n== {title}")


def run_child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module *args`` in a fresh process and return the JSON
    object it prints on stdout (its stderr goes to ours). Blocks: from a
    running event loop, call it through ``asyncio.to_thread``."""
    child = subprocess.run(
        [sys.executable, "-m", module, *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = json.loads(child.stdout)
    return result


def replay_in_child(module: str, directory: str) -> dict[str, Any]:
    """Run ``python -m module --replay-child directory`` in a fresh process
    (so its peak RSS is the replay's own) and return the JSON it prints:
    ``events``, ``seconds``, ``raw_seconds``, ``rss_growth_kib``."""
    return run_child(module, "--replay-child", directory)


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


def rss_now_kib() -> int:
    """This process's resident set size now (``/proc/self/statm``), in KiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


class PeakRss:
    """``with PeakRss() as peak:`` measures how far this process's resident
    set rises above where it was on entry: a thread samples
    ``/proc/self/statm`` every ``interval`` seconds, and the peak
    ``ru_maxrss`` is compared too (it catches a spike between samples when
    the process had not been that large before). ``growth_kib`` is the larger
    of the two; both only ever under-estimate the true rise."""

    def __init__(self, interval: float = 0.002) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.before_kib = 0
        self.peak_kib = 0
        self._max_before_kib = 0
        self._max_after_kib = 0

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_kib = max(self.peak_kib, rss_now_kib())

    def __enter__(self) -> PeakRss:
        self.before_kib = self.peak_kib = rss_now_kib()
        self._max_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, rss_now_kib())
        self._max_after_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @property
    def growth_kib(self) -> int:
        sampled = self.peak_kib - self.before_kib
        by_maxrss = self._max_after_kib - self._max_before_kib
        return max(sampled, by_maxrss, 0)


def installed_version(distribution: str) -> str:
    """The installed version of a distribution (for a section's header)."""
    from importlib.metadata import version

    return version(distribution)
