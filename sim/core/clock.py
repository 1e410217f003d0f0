"""The clock of a decode run: the end times of k decode steps, priced as stepping prices them, in fewer operations.

Kept apart from `sim.core.steps` (which runs the steps). Both modes of a decode run — fast-forward and step by
step — take their times from `step_times` (`decode_run` inlines its single affine step: the same two additions),
and `tests/test_step_times.py` checks it bit for bit against stepping.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate, chain, repeat
from operator import add, mul
from types import FunctionType
from typing import Final

import numpy as np

from sim.costmodel.models import CostModel, decode_coeffs

# longer affine decode runs are priced with numpy: from about 24 steps on it takes fewer instructions (callgrind, a
# run's times and its gaps together: 44.0k against 44.1k at 24 steps, 28.0k against 39.9k at 12; s7-core)
PLAIN_STEPS = 24
_accumulate = np.add.accumulate


class _Lookup:
    """`step_times`' default: it looks the decode coefficients up itself. (An object of its own class, not a
    sentinel tuple: the compiled core, `sim.core.native`, unboxes a tuple of floats, so `is` would not find it.)"""


_LOOKUP = _Lookup()


def step_times(
    cost: CostModel,
    t: float,
    n: int,
    ctx0: int,
    k: int,
    extra_first: float = 0.0,
    coeffs: tuple[float, float] | _Lookup | None = _LOOKUP,
) -> tuple[list[float], np.ndarray | None]:
    """End times of k decode steps of n sequences from context sum ctx0, accumulated from `t`
    (`extra_first` lengthens the first step, e.g. swap traffic); also the numpy array when numpy built it.
    For affine runs of up to `PLAIN_STEPS` steps the same float operations as numpy's run in C-level `map` and
    `accumulate`: a + b·context per step (an int context converts exactly), then t + d step after step.
    `coeffs`: `decode_coeffs(cost, n)` when the caller has it already (by default looked up here)."""
    if isinstance(coeffs, _Lookup):
        coeffs = decode_coeffs(cost, n) if n else None
    if coeffs is not None:
        a, b = coeffs
        if k == 1:  # the same two additions as the general case below
            d = a + b * (ctx0 + n)
            return [t + (d + extra_first if extra_first else d)], None
        if _COMPILED:  # a plain loop on unboxed floats: fewer operations than `map`/`accumulate` or numpy, compiled
            c = ctx0 + n  # (the same float operations: a + b·context, extra_first on the first, then t + d in turn)
            d = a + b * c
            t = t + (d + extra_first if extra_first else d)
            out = [t]
            for _ in range(k - 1):
                c += n
                t = t + (a + b * c)
                out.append(t)
            return out, None
        if k <= PLAIN_STEPS:
            # `operator` functions with `repeat`: the same float operations without a method-wrapper call per step
            steps: Iterator[float] = map(add, repeat(a), map(mul, repeat(b), range(ctx0 + n, ctx0 + n * k + 1, n)))
            if extra_first:
                steps = chain((next(steps) + extra_first,), steps)
            acc = list(accumulate(steps, initial=t))
            del acc[0]
            return acc, None
        # numpy, in place: b·context + a per step (contexts below 2^53 are exact floats), then a running sum
        # from t (`cumsum` adds in order: t + d0, then + d1, ...)
        arr = np.arange(ctx0 + n, ctx0 + n * k + 1, n, dtype=np.float64)
        arr *= b
        arr += a
        if extra_first:
            arr[0] += extra_first
        arr[0] = t + arr[0]
        _accumulate(arr, out=arr)  # `cumsum`'s own ufunc, called directly: about half its instructions
        return arr.tolist(), arr
    durations: np.ndarray = cost.decode_run(n, ctx0 + n * np.arange(1, k + 1, dtype=np.int64))
    if extra_first:
        durations = durations.copy()
        durations[0] += extra_first
    ends: np.ndarray = np.cumsum(np.concatenate(([t], durations)))[1:]
    return ends.tolist(), ends


# whether this module runs compiled (`sim.core.native`: mypyc makes `step_times` a builtin, not a Python function);
# interpreted, `map`/`accumulate` and numpy take fewer instructions than a loop (s7-core), compiled the loop does
# (SPEED.md, s15-speed)
_COMPILED: Final = not isinstance(step_times, FunctionType)

__all__ = ["PLAIN_STEPS", "step_times"]
