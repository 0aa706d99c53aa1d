"""Shared test configuration: Hypothesis profiles, command-line options and
the fuzz tests' counts.

``HYPOTHESIS_PROFILE=ci`` (set by .ci/run) runs more examples than the
default ``dev`` profile. ``--crash-rounds=N`` and ``--crash-seed=S`` set
the crash loop's rounds and seed (tests/integration/test_crash_loop.py).

The fuzz tests (``tests/properties/test_fuzz_*.py``) run a fixed number of
examples each, whatever the profile, chosen so that together they run a few
thousand cases in a few tens of seconds. ``CALLIOPE_FUZZ_EXAMPLES=100000``
runs that many examples in *each* fuzz test instead (a long run, by hand).
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


def fuzz_settings(examples: int) -> settings:
    """Settings for one fuzz test: ``examples`` examples, or the count in
    the ``CALLIOPE_FUZZ_EXAMPLES`` environment variable when it is set."""
    override = os.environ.get("CALLIOPE_FUZZ_EXAMPLES")
    return settings(
        max_examples=int(override) if override else examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
