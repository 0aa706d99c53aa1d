"""Helpers for the CRDT unit tests: run a docstring's example as a test."""

from __future__ import annotations

import doctest
import io


def run_docstring_example(obj: object) -> None:
    """Run the ``>>>`` examples in ``obj``'s own docstring; fail with doctest's report."""
    tests = doctest.DocTestFinder(recurse=False).find(obj, globs={})
    examples = sum(len(test.examples) for test in tests)
    assert examples, f"{obj!r} has no example in its docstring"
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()
