"""``calliope bench``: run the benchmark suite and print one table.

The suite is the ``benchmarks/`` package of a source checkout (it is not
installed with the package: it needs the checkout's helpers, and writes
large files): the one beside this package when Calliope is installed from a
checkout (``pip install -e .``, as ``make`` does), else ``./benchmarks``, or
the one ``--suite`` names. Each module runs in its own process, one after
another (never two at once, so they do not measure each other), with
``CALLIOPE_BENCH_RECORDS`` naming a file: every figure a module prints
beside its same-run baseline (``benchmarks.report.row``) is also appended
there as a JSON line, and the table is made from those lines. Everything
the modules print goes to a log file, named at the end.

With ``pip install 'calliope[bench]'`` the suite's ``versus`` module also
runs the same workloads on the ``eventsourcing`` library and ``pycrdt``.
PostgreSQL figures are measured only when a DSN is given (``--dsn``, or
``$CALLIOPE_POSTGRES_DSN``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from calliope.cli.output import Listing

__all__ = ["SUITE", "bench"]


@attrs.frozen
class Module:
    """One module of the suite and the arguments of its full and quick runs."""

    name: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    needs_dsn: bool = False
    takes_dsn: bool = False


SUITE = (
    Module("core"),
    Module("journal", quick=("--events", "20000")),
    Module("replication", quick=("--quick",)),
    Module("replicator", quick=("--quick",)),
    Module("crdt"),
    Module("responsiveness", quick=("--quick",)),
    Module("snapshots", quick=("--mib", "5", "--runs", "1")),
    Module("feed", quick=("--events", "20000")),
    Module("postgres", quick=("--events", "20000"), needs_dsn=True, takes_dsn=True),
    Module("versus", quick=("--quick",), takes_dsn=True),
)
"""The suite, in the order it runs; a module missing from the checkout's
``benchmarks/`` is passed over."""

RECORDS = "CALLIOPE_BENCH_RECORDS"  # (benchmarks.report.RECORDS)


def find_suite(given: str | None) -> Path:
    """The ``benchmarks`` directory to run; a ClickException saying where
    it looked when there is none."""
    if given is not None:
        candidates = [Path(given)]
    else:
        beside = Path(__file__).resolve().parents[2] / "benchmarks"
        candidates = [beside, Path.cwd() / "benchmarks"]
    for candidate in candidates:
        if (candidate / "__init__.py").is_file() and (candidate / "report.py").is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise click.ClickException(
        f"no benchmark suite found (looked in {looked}); the suite comes with a source "
        "checkout: clone the repository and run `calliope bench` there, or give --suite DIR"
    )


def _arguments(module: Module, quick: bool, dsn: str | None) -> list[str]:
    arguments = list(module.quick if quick else module.full)
    if module.takes_dsn and dsn:
        arguments += ["--dsn", dsn]
    return arguments


def _run_module(
    suite: Path, module: Module, arguments: list[str], records: str, log: Any
) -> tuple[int, float]:
    """Run one module to its end: (exit code, seconds)."""
    log.write(f"\n\n===== benchmarks.{module.name} {' '.join(arguments)}\n")
    log.flush()
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module.name}", *arguments],
        cwd=suite.parent,
        env={**os.environ, RECORDS: records, "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return result.returncode, time.perf_counter() - started


def _read_records(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _markdown(records: list[dict[str, Any]]) -> None:
    click.echo("| benchmark | figure | value | baseline (same run) | ratio |")
    click.echo("|---|---|---:|---|---:|")
    for r in records:
        decimals = 0 if abs(r["figure"]) >= 100 else 2
        click.echo(
            f"| {r['module'].removeprefix('benchmarks.')} | {r['name']} | "
            f"{r['figure']:,.{decimals}f} {r['unit']} | "
            f"{r['baseline']:,.{decimals}f} ({r['baseline_name']}) | {r['ratio']:.2f}x |"
        )


@click.command()
@click.option("--quick", is_flag=True, help="Small sizes: the whole suite in a few minutes.")
@click.option("--only", default=None, help="Comma-separated modules, e.g. 'journal,versus'.")
@click.option(
    "--dsn",
    default=lambda: os.environ.get("CALLIOPE_POSTGRES_DSN"),
    help="A PostgreSQL DSN: also measure PostgreSQL (default $CALLIOPE_POSTGRES_DSN).",
)
@click.option("--suite", default=None, help="The benchmarks/ directory (default: the checkout's).")
@click.option("--log", "log_path", default=None, help="Where the modules' output goes.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per figure.")
@click.option("--markdown", is_flag=True, help="The table in Markdown (for a README).")
def bench(
    quick: bool,
    only: str | None,
    dsn: str | None,
    suite: str | None,
    log_path: str | None,
    as_json: bool,
    markdown: bool,
) -> None:
    """Run the benchmark suite (benchmarks/ of a source checkout), one module
    at a time, and print one table: each figure, its same-run baseline and
    the ratio. With the calliope[bench] extra, the same workloads on the
    eventsourcing library and pycrdt too. Exit 1 if a module failed."""
    if as_json and markdown:
        raise click.UsageError("give one of --json and --markdown")
    directory = find_suite(suite)
    chosen = [m for m in SUITE if (directory / f"{m.name}.py").is_file()]
    if only is not None:
        wanted = {name.strip() for name in only.split(",") if name.strip()}
        if not wanted:
            raise click.BadParameter("name at least one module", param_hint="--only")
        unknown = wanted - {m.name for m in chosen}
        if unknown:
            known = ", ".join(m.name for m in chosen)
            raise click.BadParameter(
                f"no module {', '.join(sorted(unknown))} (there are: {known})", param_hint="--only"
            )
        chosen = [m for m in chosen if m.name in wanted]
    skipped = [m.name for m in chosen if m.needs_dsn and not dsn]
    chosen = [m for m in chosen if not (m.needs_dsn and not dsn)]
    if log_path is None:
        handle, log_path = tempfile.mkstemp(prefix="calliope-bench-", suffix=".log")
        os.close(handle)
    handle, records = tempfile.mkstemp(prefix="calliope-bench-", suffix=".jsonl")
    os.close(handle)
    failed: list[str] = []
    terminal = sys.stderr.isatty()
    try:
        try:
            log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError as error:
            raise click.BadParameter(
                f"cannot write {log_path}: {error.strerror}", param_hint="--log"
            ) from None
        with log:
            progress = Progress(
                TextColumn("{task.description:<24}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                disable=not terminal,
            )
            with progress:
                task = progress.add_task("benchmarks", total=len(chosen))
                for module in chosen:
                    progress.update(task, description=f"benchmarks.{module.name}")
                    arguments = _arguments(module, quick, dsn)
                    code, seconds = _run_module(directory, module, arguments, records, log)
                    if code != 0:
                        failed.append(module.name)
                    if not terminal:
                        verdict = "done" if code == 0 else f"FAILED (exit {code})"
                        click.echo(
                            f"benchmarks.{module.name}: {verdict} in {seconds:.0f} s", err=True
                        )
                    progress.advance(task)
        figures = _read_records(records)
    finally:
        os.unlink(records)
    if markdown:
        _markdown(figures)
    else:
        columns = ("benchmark", "figure", "value", "unit", "baseline", "baseline_value", "ratio")
        with Listing(columns, as_json=as_json, title="figures beside same-run baselines") as rows:
            for r in figures:
                rows.add(
                    r["module"].removeprefix("benchmarks."),
                    r["name"],
                    float(r["figure"]),
                    r["unit"],
                    r["baseline_name"],
                    float(r["baseline"]),
                    float(r["ratio"]),
                )
    for name in skipped:
        click.echo(f"benchmarks.{name}: not run (give --dsn to measure PostgreSQL)", err=True)
    click.echo(f"the modules' full output: {log_path}", err=True)
    if failed:
        raise click.ClickException(f"benchmark module(s) failed: {', '.join(failed)} (see the log)")
