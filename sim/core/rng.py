"""Independent random streams from one seed (no global random state anywhere).

`Scenario.seed` feeds a `numpy.random.SeedSequence` spawned into named children. The order of names is
fixed and new names are only appended, so adding a stream never changes the existing ones.
"""

from __future__ import annotations

import numpy as np

STREAMS = ("arrivals", "lengths", "predictor", "routing", "failures", "spread", "policy", "classes", "speculative")


def streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)}
