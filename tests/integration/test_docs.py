"""Every ```python block of the guides in docs/ runs, and does what its prose says.

Each guide's blocks run in order, in one namespace, with top-level ``await``
allowed, in an empty directory: as if pasted one after another into
``python -m asyncio``. A block that stops working fails here, naming its
guide and line. A few outputs per guide are checked, so that a block that
runs but no longer does what the guide says fails too.

docs/custom-crdt.md is run by tests/unit/test_custom_crdt_guide.py (as a
module, with Hypothesis settings of its own). Illustrations that need
something a test does not have (a PostgreSQL server at a made-up address)
are ```text blocks, as in the README.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUN_ELSEWHERE = {"custom-crdt.md"}  # tests/unit/test_custom_crdt_guide.py
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)

Check = Callable[[dict[str, Any], str], None]


def python_blocks(guide: Path) -> list[tuple[int, str]]:
    """(first line, source) of each fenced ``python`` block, in order."""
    text = guide.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in BLOCK.finditer(text)
    ]


def _event_streams(namespace: dict[str, Any], out: str) -> None:
    assert "1 teller-1 Opened(owner='ada')\n[2, 3]\n3\n" in out
    assert "3 4\n5\nrefused: Deposited.amount\n" in out  # ConcurrencyError, retry, refusal
    assert "Account(owner='ada', balance=65)\n" in out  # aggregate
    assert "[[1, 2], [3, 4], [5]]\n" in out  # paging
    assert "[4, 5, 6] 7\n" in out  # the live query: catch-up, another app's write, closed
    assert "6 66\n(Account(owner='ada', balance=70), 7)\n" in out  # snapshot, restart
    assert "DepositedV2(amount=100, currency='EUR')\n" in out  # upcast on read
    assert "UnknownEventTypeError\nAccount(owner='', balance=70)\n[(1, 'account.opened')]\n" in out
    assert "[('account-42', 7), ('account-7', 1)]\n" in out
    assert "False 7\n" in out  # repair of an intact stream


def _replicated_streams(namespace: dict[str, Any], out: str) -> None:
    assert "VersionVector({berlin:1}) VersionVector({lima:1})\nFalse True\n" in out
    assert "[('berlin', ItemAdded(sku='tea', quantity=1))]\n" in out  # lima was told
    assert "True [{'tea': 1}, {'jam': 2}]\n" in out  # the conflict, as read by berlin
    assert "VersionVector({berlin:2, lima:1}) False\n" in out  # the resolution follows both
    assert "False {'tea': 1, 'jam': 2}\n" in out  # lima reads one state again
    assert "[('berlin', 1), ('lima', 1), ('berlin', 2)] VersionVector({berlin:2, lima:1})\n" in out
    assert "berlin ItemAdded(sku='fig', quantity=1) VersionVector({berlin:3, lima:1})\n" in out
    assert "Basket(items={'tea': 1, 'jam': 3, 'fig': 1})\n" in out


def _crdts(namespace: dict[str, Any], out: str) -> None:
    assert "5\n-2\n" in out  # the counters: every concurrent update counts
    assert "frozenset({'sale'}) frozenset({'sale'})\n" in out  # ORSet: add wins
    assert "Final\n['blue', 'red']\nfrozenset({'purple'})\n" in out  # the registers
    assert "[('likes', 3), ('tags', frozenset({'new'}))]\n3\n" in out  # ORMap
    assert "Cats 1\n('b', 'a')\n" in out  # RGA, and the trap of one prepare
    assert "VersionVector({a:2, b:1}) frozenset({'y'}) {} {'y': True}\n" in out  # compaction
    assert "7\n{'title': 'Hi'}\nok\nWrongCRDTTypeError\n" in out  # the replicator
    assert "GCounter obeys the laws\n" in out


def _file_store(namespace: dict[str, Any], out: str) -> None:
    assert "['calliope.json', 'changes', 'feed', 'replicas', 'snapshots', 'streams']\n" in out
    assert "6 ['00000000000000000001.seg', '00000000000000000054.seg']\n" in out  # rolled
    assert "301\nweb-1 is in use\nworker-1\nread-only\n" in out  # two apps, a lease, read-only
    assert "00000000000000000258.seg True\n" in out  # the damage, named
    assert "True 300 ['.aside']\n301\n" in out  # repaired: moved aside, the number given again
    damaged = [
        path for path in namespace["log"].iterdir() if path.name.startswith("0" * 17 + "258")
    ]
    assert sorted(path.suffix for path in damaged) == [".aside", ".seg"]  # beside, not deleted


def _projections(namespace: dict[str, Any], out: str) -> None:
    assert "1.0\ncart-3 2.0\n" in out  # the feed: read, then followed from the checkpoint
    assert "Totals(items=4) 2.0\nTotals(items=5)\n" in out  # catch_up, then follow


GUIDES: dict[str, Check] = {
    "event-streams.md": _event_streams,
    "replicated-streams.md": _replicated_streams,
    "crdts.md": _crdts,
    "file-store.md": _file_store,
    "projections.md": _projections,
}


def test_every_guide_with_python_blocks_is_checked_here() -> None:
    with_blocks = {
        guide.name
        for guide in DOCS.glob("*.md")
        if python_blocks(guide) and guide.name not in RUN_ELSEWHERE
    }
    assert with_blocks == set(GUIDES)


@pytest.mark.parametrize("name", sorted(GUIDES))
async def test_the_guide_runs_as_written(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    guide = DOCS / name
    blocks = python_blocks(guide)
    assert blocks, f"{name} has no python blocks"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "docs_" + name.removesuffix(".md").replace("-", "_")}
    for line, source in blocks:
        code = compile(source, f"{guide}:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # our own guides, on purpose
        if inspect.iscoroutine(result):
            await result
    GUIDES[name](namespace, capsys.readouterr().out)
