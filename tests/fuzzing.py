"""Hypothesis settings of the fuzz harnesses: a short derandomized run in the suite (the same
inputs every run, so CI is not flaky), a long random one by hand with
``FUZZ_EXAMPLES=1000000 .venv/bin/python -m pytest tests/<harness>``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG = int(os.environ.get("FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int) -> settings:
    """``examples`` in the suite; ``FUZZ_EXAMPLES`` random ones when that is set."""
    return settings(
        max_examples=LONG or examples,
        derandomize=not LONG,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
