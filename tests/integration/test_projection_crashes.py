"""A projection killed at any event never folds an event twice nor loses one."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import calliope
from tests.integration.events import ItemAdded

_ROOT = Path(__file__).resolve().parents[2]


def _run(directory: str, kill_at: int, save_every: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.projection_worker",
            directory,
            str(kill_at),
            str(save_every),
        ],
        env=env,
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_projection_killed_mid_catch_up_resumes_exactly(tmp_path: Path) -> None:
    directory = str(tmp_path / "store")
    quantities = [1 + n % 7 for n in range(600)]
    async with calliope.open(directory) as app:
        for n, quantity in enumerate(quantities):
            stream = app.journal.event_stream(f"cart-{n % 13}", ItemAdded)
            await stream.persist(ItemAdded(f"s{n}", quantity))
    choices = random.Random(5)
    kills = 0
    while True:
        run = _run(directory, choices.randrange(1, 120), save_every=choices.choice([1, 7, 50]))
        if run.returncode == 0:
            break
        assert run.returncode == -9, run.stderr
        kills += 1
        assert kills < 100, "the projection never finished"
    assert kills >= 3
    assert json.loads(run.stdout) == {"count": len(quantities), "sum": sum(quantities)}
