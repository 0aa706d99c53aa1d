"""``calliope bench`` through its console script: the suite's figures in
one table, failures and bad options as one clear line and an exit code."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.integration.test_cli import calliope_command

ROOT = Path(__file__).resolve().parents[2]


def bench(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*calliope_command(), "bench", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


def test_bench_prints_each_figure_beside_its_baseline(tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    result = bench("--quick", "--only", "snapshots", "--json", "--log", str(log))
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines()]
    assert [f["figure"] for f in figures] == [
        "file store: save, worst loop stall",
        "file store: load, worst loop stall",
        "memory store: save, worst loop stall",
        "memory store: load, worst loop stall",
    ]
    for figure in figures:
        assert figure["benchmark"] == "snapshots" and figure["unit"] == "ms"
        assert figure["baseline"] == "a busy thread" and figure["baseline_value"] > 0
        assert abs(figure["ratio"] - figure["value"] / figure["baseline_value"]) < 1e-9
    assert "benchmarks.snapshots: done in" in result.stderr
    assert f"the modules' full output: {log}" in result.stderr
    assert "worst stall" in log.read_text()  # what the module printed
    markdown = bench("--quick", "--only", "snapshots", "--markdown")
    header = "| benchmark | figure | value | baseline (same run) | ratio |"
    assert markdown.stdout.startswith(header)
    assert markdown.stdout.count("| snapshots | ") == 4


def test_bench_needs_a_suite_and_known_modules(tmp_path: Path) -> None:
    unknown = bench("--only", "journal,nonsense")
    assert unknown.returncode == 2 and "no module nonsense" in unknown.stderr
    nothing = bench("--only", ",")
    assert nothing.returncode == 2 and "name at least one module" in nothing.stderr
    missing = bench("--suite", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: no benchmark suite found")
    assert len(missing.stderr.splitlines()) == 1


def test_a_failing_module_fails_the_run_and_says_which(tmp_path: Path) -> None:
    suite = tmp_path / "benchmarks"
    suite.mkdir()
    shutil.copy(ROOT / "benchmarks" / "report.py", suite / "report.py")
    (suite / "__init__.py").write_text("")
    (suite / "core.py").write_text(
        "from benchmarks.report import row\n"
        "print(row('a figure', 10.0, 'ops/s', 5.0, 'a baseline'))\n"
    )
    (suite / "journal.py").write_text("raise SystemExit('journal broke')\n")
    result = bench("--suite", str(suite), "--json", cwd=tmp_path)
    assert result.returncode == 1
    assert [json.loads(line)["ratio"] for line in result.stdout.splitlines()] == [2.0]
    assert "benchmarks.journal: FAILED (exit 1)" in result.stderr
    assert "Error: benchmark module(s) failed: journal (see the log)" in result.stderr
