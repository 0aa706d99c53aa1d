"""Every Python block of README.md runs.

The blocks run in order, in one namespace, with top-level ``await`` allowed,
in an empty directory: as if pasted one after another into
``python -m asyncio``. A block that stops working fails here, naming its
line in README.md.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[tuple[int, str]]:
    """(first line, source) of each fenced ``python`` block, in order."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append((line, match.group(1)))
    return blocks


def test_the_readme_has_python_blocks() -> None:
    assert len(python_blocks()) >= 5


async def test_every_readme_block_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # As in a script or `python -m asyncio`: classes defined in `__main__`.
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for line, source in python_blocks():
        code = compile(source, f"README.md:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # our own README, on purpose
        if inspect.iscoroutine(result):
            await result
    out = capsys.readouterr().out
    assert "2 ItemAdded(sku='pear', quantity=1)" in out  # the live query's catch-up
    assert namespace["snapshot"].sequence == 3
    assert namespace["counter"].value == 5
    assert "6\n" in out and "7\n" in out and "2 3\n" in out  # the replicator's block
    assert namespace["tags"].value == {"new", "sale"}
    assert "cart-7 plain 1\n" in out  # the stream listing
