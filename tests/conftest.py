"""Shared test configuration: the hypothesis profiles every property test runs under.

`ci` (the default) is deterministic: derandomized examples, so a failure in CI reproduces on any machine and
a passing run is not luck of the draw; no deadline (the simulator's first call compiles caches and 2-core
CI machines are slow). `explore` draws fresh random examples for bug hunting
(`HYPOTHESIS_PROFILE=explore`, with `SERVESIM_EXAMPLES=500` for more per test). Strategies shared by
several test modules live in `tests/strategies.py`. `silicon_rows` is the shared silicon measurement file, read
once for the test modules that check the benchmarks' row readings against hand-read rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

# the `queueing` package, imported before any test module puts benchmarks/ on sys.path to import its scripts:
# after that, benchmarks/queueing.py would shadow it for the planner and the queueing tests
import queueing  # noqa: F401

SILICON_CSV = Path(__file__).resolve().parents[2] / "shared/data/ground-truth/aiconfigurator/silicon_sample.csv"

# tests take pytest's tmp_path; every example writes its own files in it, so sharing it is harmless
_SUPPRESS = [HealthCheck.function_scoped_fixture]
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None, suppress_health_check=_SUPPRESS)
settings.register_profile("explore", derandomize=False, print_blob=True, deadline=None, suppress_health_check=_SUPPRESS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def silicon_rows() -> pd.DataFrame:
    """aiconfigurator's silicon_sample.csv indexed by row id (tests skip where the shared data is absent). Tests
    read it and copy a row before changing it; nobody writes to the frame."""
    if not SILICON_CSV.exists():
        pytest.skip("shared silicon_sample.csv not present")
    return pd.read_csv(SILICON_CSV).set_index("id", drop=False)
