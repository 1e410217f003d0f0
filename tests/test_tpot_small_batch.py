"""benchmarks/tpot_small_batch.py: the spread it reports is the quartiles over the median (a hand case), so a
constant deficit reads as spread 0 and the rows' 1.8-2.1 (COVERAGE.md, s12-tpot) as far from one."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tpot_small_batch as tsb


def test_spread_by_hand() -> None:
    s = tsb.spread([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")])
    assert s["n"] == 5
    assert (s["q1"], s["median"], s["q3"]) == (2.0, 3.0, 4.0)
    assert math.isclose(s["iqr_over_median"], 2.0 / 3.0)
    assert tsb.spread([22.0] * 7)["iqr_over_median"] == 0.0
