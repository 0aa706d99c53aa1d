"""docs/custom-crdt.md runs: its ```python blocks, in order, as one module."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from hypothesis import settings

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "custom-crdt.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def guide_code() -> str:
    blocks = BLOCK.findall(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) >= 6, "the guide lost its code blocks"
    return "\n".join(blocks)


def test_the_guide_code_runs() -> None:
    # A real module, so that attrs, cattrs and Hypothesis can resolve its names.
    module = types.ModuleType("custom_crdt_guide")
    sys.modules[module.__name__] = module
    # The guide's checks use the active profile; a few examples show that they
    # run (the laws themselves are exercised in tests/properties).
    active = settings.default
    settings.register_profile("custom-crdt-guide", parent=active, max_examples=20)
    settings.load_profile("custom-crdt-guide")
    try:
        exec(compile(guide_code(), str(GUIDE), "exec"), module.__dict__)
        # The stateful test the guide builds runs too.
        module.TestMaxRegister("runTest").runTest()
    finally:
        settings.register_profile("restored", parent=active)
        settings.load_profile("restored")
        del sys.modules[module.__name__]
