"""Log-log interpolation, the one way servesim reads a measured curve between its points.

Kernel times and efficiency ratios are interpolated linearly in log size (and log value), held flat beyond
the ends: that keeps both the launch-latency floor of small kernels and the linear growth of large ones.
Three entry points over the same formula: a vectorised one, a scalar one, and a plain-Python scalar one on
pre-logged points for hot paths (np.interp on one scalar costs microseconds).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np


def loglog(x: np.ndarray | float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """y at x by linear interpolation of log y in log x (raw, positive points); flat beyond the ends."""
    return np.exp(np.interp(np.log(np.asarray(x, dtype=np.float64)), np.log(xs), np.log(ys)))


def loglog_at(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """Scalar `loglog` (math.exp of one np.interp)."""
    return math.exp(float(np.interp(math.log(x), np.log(xs), np.log(ys))))


def exp_interp_log(x: float, log_xs: Sequence[float], log_ys: Sequence[float]) -> float:
    """exp of log y interpolated at log x on pre-logged points (plain Python floats, ascending log_xs)."""
    lx = math.log(x)
    if lx <= log_xs[0]:
        return math.exp(log_ys[0])
    if lx >= log_xs[-1]:
        return math.exp(log_ys[-1])
    i = bisect.bisect_right(log_xs, lx)
    x0, x1, y0, y1 = log_xs[i - 1], log_xs[i], log_ys[i - 1], log_ys[i]
    return math.exp(y0 + (lx - x0) * (y1 - y0) / (x1 - x0))
