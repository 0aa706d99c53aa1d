"""Shared test configuration: Hypothesis profiles, command-line options.

``HYPOTHESIS_PROFILE=ci`` (set by .ci/run) runs more examples than the
default ``dev`` profile. ``--crash-rounds=N`` and ``--crash-seed=S`` set
the crash loop's rounds and seed (tests/integration/test_crash_loop.py).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("calliope")
    group.addoption(
        "--crash-rounds",
        type=int,
        default=50,
        help="rounds of the crash loop (kill a writer, reopen, check); default 50",
    )
    group.addoption(
        "--crash-seed",
        type=int,
        default=None,
        help="seed of the crash loop, to replay a failure (default: a random one, printed)",
    )
