"""Shared test configuration: the hypothesis profiles every property test runs under.

`ci` (the default) is deterministic: derandomized examples, so a failure in CI reproduces on any machine and
a passing run is not luck of the draw; no deadline (the simulator's first call compiles caches and 2-core
CI machines are slow). `explore` draws fresh random examples for bug hunting
(`HYPOTHESIS_PROFILE=explore`, with `SERVESIM_EXAMPLES=500` for more per test). Strategies shared by
several test modules live in `tests/strategies.py`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# tests take pytest's tmp_path; every example writes its own files in it, so sharing it is harmless
_SUPPRESS = [HealthCheck.function_scoped_fixture]
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None, suppress_health_check=_SUPPRESS)
settings.register_profile("explore", derandomize=False, print_blob=True, deadline=None, suppress_health_check=_SUPPRESS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
