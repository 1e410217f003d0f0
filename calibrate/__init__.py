"""Calibration: torch microbenchmarks into measured tables, fits of measured iterations into profiles.

torch is imported lazily (only the harness and the CPU real run need it). `sim` is imported first
because `hwprofiles`' catalogue imports `sim.errors` and the two packages must initialise in that order.
"""

import sim  # noqa: F401  (initialisation order, see above)
