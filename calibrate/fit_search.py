"""The search of `calibrate.fit_run`: where in the unit box of the free terms the fit looks, and in what order.

A scrambled Sobol scan (the objective is rugged: look widely first), a compass search from its best point when
the budget allows, then trust-region least squares with what is left of it. Every evaluation is one replay of
each run, so the search counts them (`Budget`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

# The compass search halves its step from 1/4 of the box to 1/64 (5 step sizes): a sweep that finds nothing better
# costs 2 evaluations per term, so a full refinement costs at least 2 x terms x 5.
COMPASS_HALVINGS = 5


class Budget(Exception):
    """The fit has run the evaluations it may (`max_evals`): the search stops at the best point so far."""


def search(evaluate: Callable[[np.ndarray], Any], cache: dict[Any, Any], dim: int, max_evals: int, seed: int) -> None:
    """A scrambled Sobol scan of the unit box (the objective is rugged: look widely first), a compass search from
    its best point (`compass`) when the budget left covers its full refinement (few terms), then trust-region
    least squares (soft-L1) from the best point with what is left, within `max_evals` evaluations in all
    (`evaluate` raises `Budget` past them). Where the compass does not fit (e.g. 5 terms in 60 evaluations) the
    finite-difference descent alone uses the budget better: one step along all terms per dim + 1 replays."""
    from scipy.optimize import least_squares

    try:
        for u in sobol(dim, min(max(4, max_evals // 2), 4 * 2**dim), seed):
            evaluate(u)
        if 2 * dim * COMPASS_HALVINGS <= max_evals - len(cache):  # the budget covers a full refinement
            compass(evaluate, cache)
        left = max(1, max_evals - len(cache))
        least_squares(
            lambda u: evaluate(u)[0],
            np.asarray(best(cache), dtype=np.float64),
            bounds=(0.0, 1.0),
            method="trf",
            loss="soft_l1",
            f_scale=0.05,
            diff_step=0.02,
            max_nfev=max(1, left // (dim + 1)),
            xtol=1e-3,
            ftol=1e-4,
        )
    except Budget:
        pass


def search_identified(
    evaluate: Callable[[np.ndarray], Any],
    data: Callable[[np.ndarray], np.ndarray],
    cache: dict[Any, Any],
    names: list[str],
    u0: np.ndarray,
    max_evals: int,
    seed: int,
) -> tuple[tuple[float, ...], dict[str, str]]:
    """`search` over the terms the runs can place from `u0` only (`calibrate.fit_quality.identified` on the Jacobian
    of `data`, the runs' residuals, at u0: one evaluation per term), the others held at u0: the best point (every
    term, rounded as `evaluate` keys it) and why each held term is frozen. `cache` is `evaluate`'s, counted against
    `max_evals`."""
    from calibrate import fit_quality

    free, frozen = fit_quality.identified(fit_quality.jacobian(data, u0, data(u0)), names)
    sub: dict[tuple[float, ...], Any] = {}

    def full(v: np.ndarray) -> np.ndarray:
        u = u0.copy()
        u[free] = v
        return u

    def evaluate_free(v: np.ndarray) -> Any:
        key = tuple(np.round(v, 12).tolist())
        if key not in sub:
            sub[key] = evaluate(full(np.asarray(v, dtype=np.float64)))
        return sub[key]

    evaluate_free(u0[free])
    if free:
        search(evaluate_free, sub, len(free), max_evals - len(cache) + len(sub), seed)
    return tuple(np.round(full(np.asarray(best(sub), dtype=np.float64)), 12).tolist()), frozen


def compass(evaluate: Callable[[np.ndarray], Any], cache: dict[Any, Any], h: float = 0.25) -> None:
    """Compass (pattern) search in the unit box: from the best point, a step of h along each coordinate either
    way; move at once to any better point, halve h when none is, stop after `COMPASS_HALVINGS` sizes. Unlike
    finite-difference descent it needs no gradient, which a rugged objective (batching steps) does not give, and
    it crosses a long curved valley in a few big steps (the Sobol scan's best point can lie far along it)."""

    def loss(u: tuple[float, ...]) -> float:
        return float(np.sum(soft_l1(cache[u][0])))

    at = best(cache)
    while h >= 0.25 / 2 ** (COMPASS_HALVINGS - 1):
        moved = False
        for i in range(len(at)):
            for sign in (-1.0, 1.0):
                u = np.asarray(at, dtype=np.float64)
                u[i] = min(1.0, max(0.0, u[i] + sign * h))
                evaluate(u)
                key = best(cache)
                if loss(key) < loss(at):
                    at, moved = key, True
                    break
        if not moved:
            h /= 2


def sobol(dim: int, n: int, seed: int) -> np.ndarray:
    """n scrambled Sobol points in [0, 1]^dim, seeded from the scenario's seed (deterministic)."""
    from scipy.stats import qmc

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5F17]))
    points = qmc.Sobol(dim, scramble=True, seed=rng).random_base2(max(1, int(math.log2(n))))  # balanced: 2^m
    return np.asarray(points, dtype=np.float64)


def best(cache: dict[tuple[float, ...], tuple[np.ndarray, Any]]) -> tuple[float, ...]:
    """The evaluated point with the lowest robust loss (the optimiser's last point need not be it)."""
    return min(cache, key=lambda k: float(np.sum(soft_l1(cache[k][0]))))


def soft_l1(r: np.ndarray, f: float = 0.05) -> np.ndarray:
    """scipy's soft-L1 loss per residual, f the scale below which it is quadratic."""
    z = (r / f) ** 2
    return f**2 * 2 * (np.sqrt(1 + z) - 1)
