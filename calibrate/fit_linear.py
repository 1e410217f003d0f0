"""A few engine terms fitted to means-only closed loops through a linearised replay, with the number of free terms
chosen by leave-one-out over the fitted rows.

Why not `calibrate.fit_run`'s search: a means-only row (one mean TTFT and TPOT per closed loop, e.g.
aiconfigurator's silicon rows) gives three numbers, and a search of 24 evaluations, each replaying every fitted
row, spent most of the silicon cross-fit's 46 CPU minutes (benchmarks/VALIDATION.md, "Silicon cross-fit").
Here each fitted row is replayed once at the preset and once per term with that term moved by `Term.step`
(forward differences): the log of each metric's mean is then a linear function of the terms' moves
(`Linearised`), and everything after that (the fit, its prior, leave-one-out, the choice of terms) is linear
least squares on a few numbers, no replay. The fitted point is then replayed for real (`chord`: refitted from
the replayed point, its slopes corrected by the replayed step, where the response is curved) and only replayed
points are ever returned; the keep-the-preset rule (`calibrate.fit_guard`) is applied to those replays by the
caller.

Coordinates: a scale is moved in log (a memory-bandwidth scale s multiplies the memory-bound part of a step by
1/s: log TPOT is close to linear in log s), a time additively; either is measured in units of its bounds'
width (`Term.width`), so one prior weight treats them alike. A move is bounded by the schema's `fit_bounds`.

Choosing the terms: the ladder of nested term sets (decode level first, then the intercepts) is scored by
leave-one-out over the fitted rows: each row predicted by a fit to the others. The smallest set within
`LOO_TIE` of the best score wins; the empty set (the preset) is a candidate, so a term is freed only where it
predicts rows it was not fitted on better than the preset does. This needs no held-out row.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear

from calibrate.fit_guard import worse

METRICS = ("ttft", "tpot", "e2e")
# The fit's objective weights per metric, multiplying each log-ratio residual BEFORE it is squared (`solve`, `loss`):
# TTFT's weight 0.5 makes its squared error count a quarter (0.5^2) of TPOT's or E2E's. TPOT and E2E are the
# targets; TTFT carries the intercept terms but its gap on SGLang / TensorRT-LLM is a missing mechanism that grows
# with clients (VALIDATION.md, "Silicon cross-fit (branch s10-fit)"), which a full weight would let pull the decode
# terms.
WEIGHTS = {"ttft": 0.5, "tpot": 1.0, "e2e": 1.0}
SCORED = ("tpot", "e2e")  # leave-one-out scores these (issue 12's after-fit targets)
# Tie-breaker towards the preset: PRIOR x the move in units of the bounds' width, per term. A move across the
# whole box costs a 2 % log error on one metric, so the prior decides only along directions the rows leave flat.
PRIOR = 0.02
# Percentage points a larger term set's leave-one-out score must beat a smaller one's by: the measured noise floor,
# below which a gain is run-to-run spread, not a term the rows need. Repeated measurements of one configuration on
# one backend_version in silicon_sample.csv differ from the mean of the others by a median 1.0 % (TPOT) and 1.0 %
# (E2E), the two metrics `score` averages (benchmarks/validation_silicon_noise.py: 95 configurations, 206
# measurements; VALIDATION.md, "Silicon cross-fit per engine and GPU"). It is a floor: across versions the spread
# is ~10 %, on SGLang agg 18 %.
LOO_TIE = 1.0


@dataclass(frozen=True)
class Term:
    """One free term: a dotted scenario path, its bounds, its preset value, log or additive coordinates, and the
    forward-difference step in units of the bounds' width."""

    path: str
    lo: float
    hi: float
    x0: float
    log: bool
    step: float = 0.2
    ttft: bool = False  # a term that mainly moves TTFT (prefill compute, per-request time): freeing it guards TTFT

    def at_bound(self, m: float, tol: float = 1e-3) -> bool:
        """Whether the move m has left the preset and sits on a bound (within `tol` widths): the rows want this
        term past its physical range, i.e. a mechanism the term does not describe."""
        lo, hi = self.bounds
        return abs(m) > tol and (m <= lo + tol or m >= hi - tol)

    def _c(self, x: float) -> float:
        return math.log(x) if self.log else x

    @property
    def width(self) -> float:
        return self._c(self.hi) - self._c(self.lo)

    def move(self, x: float) -> float:
        """The value x as a move from the preset, in widths."""
        return (self._c(x) - self._c(self.x0)) / self.width

    def value(self, m: float) -> float:
        """The value at a move of m widths from the preset (clipped into the bounds)."""
        c = self._c(self.x0) + m * self.width
        x = math.exp(c) if self.log else c
        return min(max(x, self.lo), self.hi)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.move(self.lo), self.move(self.hi)

    def probe(self) -> float:
        """The move of the forward difference: `step` widths up, or down where the upper bound is too close."""
        lo, hi = self.bounds
        return self.step if hi - 0.0 >= self.step else -min(self.step, -lo)


@dataclass
class Linearised:
    """One fitted row: the measured log means, the replayed log means at the point `at` (moves of every term) and
    their slopes per width of each term (3 x terms)."""

    measured: np.ndarray
    base: np.ndarray
    at: np.ndarray
    slopes: np.ndarray

    def predict(self, moves: np.ndarray) -> np.ndarray:
        return self.base + self.slopes @ (moves - self.at)

    def error_pct(self, moves: np.ndarray) -> np.ndarray:
        """Predicted signed error (%) of each metric's mean at `moves`."""
        return (np.exp(self.predict(moves) - self.measured) - 1.0) * 100.0


def weights_vector(weights: dict[str, float] | None = None) -> np.ndarray:
    w = weights or WEIGHTS
    return np.array([w[m] for m in METRICS])


def solve(
    rows: Sequence[Linearised],
    terms: Sequence[Term],
    active: Sequence[int],
    weights: dict[str, float] | None = None,
    prior: float = PRIOR,
) -> np.ndarray:
    """The moves (every term; inactive ones 0, the preset) minimising the weighted squared log errors of `rows`'
    linearised means plus the prior, within the bounds."""
    moves = np.zeros(len(terms))
    if not active or not rows:
        return moves
    w = weights_vector(weights)
    idx = list(active)
    a_rows, b_rows = [], []
    for r in rows:
        ok = np.isfinite(r.measured) & np.isfinite(r.base)
        a_rows.append((w[:, None] * r.slopes[:, idx])[ok])
        # residual at moves m: base + S (m - at) - measured  ->  S m - (measured - base + S at)
        b_rows.append((w * (r.measured - r.base + r.slopes @ r.at))[ok])
    a = np.vstack([*a_rows, prior * np.eye(len(idx))])
    b = np.concatenate([*b_rows, np.zeros(len(idx))])
    lo = np.array([terms[i].bounds[0] for i in idx])
    hi = np.array([terms[i].bounds[1] for i in idx])
    sol = lsq_linear(a, b, bounds=(lo, hi), method="bvls")
    moves[idx] = sol.x
    return moves


def score(errors: Sequence[np.ndarray], metrics: Sequence[str] = SCORED) -> float:
    """The mean over `metrics` of the median over rows of |error| (%): the unit every table reports."""
    meds = []
    for m in metrics:
        k = METRICS.index(m)
        v = [abs(float(e[k])) for e in errors if math.isfinite(float(e[k]))]
        meds.append(statistics.median(v) if v else math.inf)
    return float(np.mean(meds))


def loo(
    rows: Sequence[Linearised], terms: Sequence[Term], active: Sequence[int], weights: dict[str, float] | None = None
) -> float:
    """Leave-one-out score of freeing `active`: each row predicted by the fit to the others (`score`). With no
    active term it is the preset's own error on the rows."""
    errs = []
    for i, r in enumerate(rows):
        others = [o for j, o in enumerate(rows) if j != i]
        errs.append(r.error_pct(solve(others, terms, active, weights)))
    return score(errs)


def identifiable(
    rows: Sequence[Linearised], terms: Sequence[Term], active: Sequence[int], weights: dict[str, float] | None = None
) -> list[int]:
    """The terms of `active` that the fitted rows can place (`calibrate.fit_quality.identified` on the rows' weighted
    slopes stacked, in widths): a term whose slopes are nearly a combination of the others' (multiple correlation
    above `fit_quality.TRADEOFF`) or flat is left out. With 4 rows of 3 means, a set whose terms the rows cannot
    tell apart is fitted to where the prior and the bounds put it, not where the rows do."""
    from calibrate.fit_quality import identified

    idx = list(active)
    if not idx or not rows:
        return idx
    w = weights_vector(weights)
    a = np.vstack([(w[:, None] * r.slopes[:, idx])[np.isfinite(r.measured) & np.isfinite(r.base)] for r in rows])
    keep, _ = identified(a, [terms[i].path for i in idx])
    return [idx[k] for k in keep]


def choose(
    rows: Sequence[Linearised],
    terms: Sequence[Term],
    ladder: Sequence[Sequence[int]],
    weights: dict[str, float] | None = None,
    tie: float = LOO_TIE,
) -> tuple[list[int], dict[str, float]]:
    """The term set of `ladder` (nested, smallest first; the empty set is always a candidate) with the best
    leave-one-out score, the smallest one within `tie` of it; and every candidate's score (by term names). A set
    whose terms the rows cannot tell apart (`identifiable`) is no candidate."""
    cands = [list(s) for s in ([], *ladder) if identifiable(rows, terms, s, weights) == list(s)]
    scores = [loo(rows, terms, s, weights) if len(rows) > 1 else math.inf for s in cands]
    if len(rows) < 2:
        return [], {"": scores[0]}
    best = min(scores)
    pick = next(s for s, v in zip(cands, scores, strict=True) if v <= best + tie)
    names = {"+".join(terms[i].path.rsplit(".", 1)[-1] for i in s): v for s, v in zip(cands, scores, strict=True)}
    return pick, names


def linearise(
    terms: Sequence[Term],
    measured: Sequence[np.ndarray],
    replay: Callable[[int, np.ndarray, bool], np.ndarray],
    base: Sequence[np.ndarray],
) -> list[Linearised]:
    """Forward-difference slopes of every row: `replay(row, moves, probe)` returns the row's log means at those
    moves (`probe` true: a replay used only for a slope, which the caller may shorten), `base` the rows' log means
    at the preset (full replays)."""
    out = []
    for i, (m, b) in enumerate(zip(measured, base, strict=True)):
        zero = np.zeros(len(terms))
        ref = replay(i, zero, True)  # the slope's own base, at the probe's length (same run length both sides)
        cols = []
        for k, t in enumerate(terms):
            h = t.probe()
            mv = zero.copy()
            mv[k] = h
            d = (replay(i, mv, True) - ref) / h
            cols.append(np.where(np.isfinite(d), d, 0.0))
        out.append(Linearised(np.asarray(m, float), np.asarray(b, float), zero, np.column_stack(cols)))
    return out


def chord(
    rows: list[Linearised],
    terms: Sequence[Term],
    active: Sequence[int],
    replay_all: Callable[[np.ndarray], list[np.ndarray]],
    iterations: int = 3,
    weights: dict[str, float] | None = None,
) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Fit, replay the fitted point, refit from there, `iterations` times: the levels replayed, the slopes corrected
    by the step just replayed (Broyden's rank-one update, per row: the response is curved, e.g. a memory scale's
    1/s, and a step far from the preset would otherwise keep the preset's slopes); every replayed point with its
    rows' log means, the preset (moves 0, `rows`' bases) first. Points already replayed are not replayed again."""
    points = [(np.zeros(len(terms)), [r.base for r in rows])]
    cur = list(rows)
    for _ in range(iterations):
        m = solve(cur, terms, active, weights)
        if any(np.allclose(m, p, atol=1e-6) for p, _ in points):
            break
        logs = replay_all(m)
        points.append((m, logs))
        cur = [_broyden(r, m, np.asarray(lg, dtype=np.float64)) for r, lg in zip(cur, logs, strict=True)]
    return points


def _broyden(r: Linearised, m: np.ndarray, logs: np.ndarray) -> Linearised:
    """The row re-based at the replayed point m, its slopes moved to agree with the step from its last point."""
    dx = m - r.at
    dy = np.where(np.isfinite(logs) & np.isfinite(r.base), logs - r.base, r.slopes @ dx)
    n = float(dx @ dx)
    slopes = r.slopes + np.outer(dy - r.slopes @ dx, dx) / n if n > 0 else r.slopes
    return Linearised(r.measured, logs, m, slopes)


def loss(measured: Sequence[np.ndarray], logs: Sequence[np.ndarray], weights: dict[str, float] | None = None) -> float:
    """The objective at replayed means (no prior): weighted squared log errors summed over rows."""
    w = weights_vector(weights)
    total = 0.0
    for m, lg in zip(measured, logs, strict=True):
        r = w * (np.asarray(lg) - np.asarray(m))
        total += float(np.sum(np.where(np.isfinite(r), r, 5.0) ** 2))
    return total


def errors_pct(measured: np.ndarray, logs: np.ndarray) -> dict[str, float]:
    """Signed error (%) of each metric's replayed mean."""
    e = (np.exp(np.asarray(logs) - np.asarray(measured)) - 1.0) * 100.0
    return {m: float(x) for m, x in zip(METRICS, e, strict=True)}


def pick(
    measured: Sequence[np.ndarray],
    points: Sequence[tuple[np.ndarray, Sequence[np.ndarray]]],
    guard: tuple[str, ...] = SCORED,
    weights: dict[str, float] | None = None,
) -> tuple[int, list[str]]:
    """The replayed point to use (index into `points`, 0 = the preset) and, where it is the preset, why: of the
    points whose loss is below the preset's, the lowest whose fitted rows' median |error| of every `guard` metric
    is no worse than the preset's (`calibrate.fit_guard.worse`); so never worse than the preset on the fitted
    rows. The reasons given are the lowest-loss point's."""

    def cmp(logs: Sequence[np.ndarray]) -> list[dict[str, dict[str, dict[str, float]]]]:
        pairs = zip(measured, logs, strict=True)
        return [{m: {"mean": {"error_pct": e}} for m, e in errors_pct(ms, lg).items()} for ms, lg in pairs]

    losses = [loss(measured, logs, weights) for _, logs in points]
    first: list[str] | None = None
    for k in sorted(range(1, len(points)), key=lambda j: losses[j]):
        if not losses[k] < losses[0]:
            break
        reasons = worse(cmp(points[0][1]), cmp(points[k][1]), guard)
        if not reasons:
            return k, []
        first = reasons if first is None else first
    return 0, first or ["loss"]


def guarded(terms: Sequence[Term], active: Sequence[int], reading: bool = False) -> tuple[str, ...]:
    """The metrics the keep-the-preset guard checks: `SCORED` (TPOT, E2E), and TTFT too where a freed term mainly
    moves TTFT (`Term.ttft`) or another reading of the scenario is used (`reading`: the MoE GEMM reading prices
    prompt steps too): the leave-one-out score and the guard look only at TPOT and E2E, so without this a
    prefill-compute scale or a front-end time could buy E2E with TTFT unchecked (review of s11-fit: SGLang H200
    disagg R1, compute scale at its 0.5 bound, held-out TTFT 56 -> 121 %)."""
    return (*SCORED, "ttft") if reading or any(terms[i].ttft for i in active) else SCORED


def fit(
    rows: list[Linearised],
    terms: Sequence[Term],
    active: Sequence[int],
    replay_all: Callable[[np.ndarray], list[np.ndarray]],
    weights: dict[str, float] | None = None,
    reference: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, list[np.ndarray] | None, list[str], list[str], list[tuple[np.ndarray, list[np.ndarray]]]]:
    """Chord replays of `active` (`chord`), the replayed point the guard accepts (`pick`, guarding `guarded`); where
    that point puts a freed term on its bound (`Term.at_bound`), that term keeps its preset and the others are
    refitted without it, until no freed term sits on a bound. Returns the moves (zeros: the preset), the fitted
    rows' log means there (None at the preset: the rows' bases), the guard's reasons for keeping the preset, the
    terms kept at their preset for landing on a bound, and every replayed point.

    `reference`: the rows' log means at the preset where `rows` are linearised under another reading of the
    scenario (`calibrate.fit_means.READINGS`): the guard then compares every point, the reading's own base
    (moves 0, returned with its logs) included, with the preset's, never with the reading's base."""
    measured = [r.measured for r in rows]
    free = list(active)
    bound: list[str] = []
    zero = np.zeros(len(terms))
    every: list[tuple[np.ndarray, list[np.ndarray]]] = [(zero, reference or [r.base for r in rows])]
    if reference is not None:  # the reading alone, no term moved: a candidate like any replayed point
        every.append((zero, [r.base for r in rows]))
    while free or reference is not None:
        points = chord(rows, terms, free, replay_all, weights=weights)[1:] if free else []
        every.extend(points)
        cands = every[: 2 if reference is not None else 1] + points
        k, reasons = pick(measured, cands, guarded(terms, free, reference is not None), weights)
        if k == 0:
            return zero, None, reasons, bound, every
        moves, logs = cands[k]
        hit = [i for i in free if terms[i].at_bound(float(moves[i]))]
        if not hit:
            return moves, logs, [], bound, every
        bound += [terms[i].path for i in hit]
        free = [i for i in free if i not in hit]
    return zero, None, ["every freed term on a bound"], bound, every
