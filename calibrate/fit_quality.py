"""How well the observed runs determine a `fit-run` fit: per-term uncertainty and the terms that trade off.

A fit over end-to-end logs can match the runs with a whole valley of parameter values: one TP1 run cannot
tell a faster memory system from faster attention (both shorten a decode step), and no TP1 run says anything
about the all-reduce. This module linearises the residuals at the fitted point (forward differences in the
unit-scaled parameters, one replay per term) and reports, from the Gauss-Newton covariance
s²·(JᵀJ)⁻¹ (s² = residual sum of squares / (residuals - rank of J); the inverse through the SVD of J, so a
combination of terms no residual sees leaves those terms unbounded, not at the pseudo-inverse's small sd):

- `sd`: one standard deviation of each term, in its own units (how far it could move for the same fit);
- `undetermined`: terms whose standard deviation exceeds half their bounds' width (the runs leave them to
  the bounds or the prior: do not trust their values, nor predictions that lean on them);
- `tradeoffs`: pairs whose estimates correlate beyond `TRADEOFF` (the runs fix a combination, not each);
- `rms_log_error`: per run, the root mean square of the log-ratios simulated/measured (≈ typical relative
  error of the fitted quantiles).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

TRADEOFF = 0.9  # |correlation| above which two terms are reported as trading off
UNDETERMINED = 0.5  # a standard deviation above this share of the bounds' width: the runs do not pin the term
STEP = 0.02  # forward-difference step in the unit-scaled parameters (as the optimiser's diff_step)
FLAT = 1e-6  # a residual slope below this (log-ratio per unit-scaled move) is float noise, not information
SINGULAR = 1e-8  # singular values of J below this share of the largest: directions the runs do not determine
NULL_LOAD = 1e-12  # a term whose squared loading on those directions exceeds this moves along them (not noise)


def jacobian(residuals: Callable[[np.ndarray], np.ndarray], u: np.ndarray, r0: np.ndarray) -> np.ndarray:
    """Forward differences of `residuals` at u (steps backwards at the upper bound of [0, 1])."""
    cols = []
    for i in range(len(u)):
        h = STEP if u[i] + STEP <= 1.0 else -STEP
        v = u.copy()
        v[i] += h
        cols.append((residuals(v) - r0) / h)
    return np.column_stack(cols) if cols else np.zeros((len(r0), 0))


# The noise a fitted mean carries, as a log error: repeated measurements of one configuration on one backend_version
# in aiconfigurator's silicon_sample.csv differ from the mean of the others by a median 1.0 % TPOT and 1.0 % E2E
# (benchmarks/validation_silicon_noise.py; calibrate.fit_linear.LOO_TIE is the same measurement in points).
NOISE = 0.01


def identified(jac: np.ndarray, names: Sequence[str], noise: float = NOISE) -> tuple[list[int], dict[str, str]]:
    """The terms the runs can place, chosen before a fit from the Jacobian of the runs' residuals at the start
    values (per unit of each term's coordinates, e.g. its bounds' width), and why each other term is frozen at its
    start value (the preset).

    Greedy, most informative first: of the terms not yet decided, the one whose column keeps the largest norm after
    projecting out the columns already freed. Its standard deviation, with every residual carrying `noise` and the
    freed terms fitted beside it, is noise / that norm; it is freed where that is at most `UNDETERMINED` (half
    its box), i.e. where the norm is at least noise / UNDETERMINED (and not float noise, `FLAT`). Otherwise it is
    frozen: "flat" where its own column is below that (moving it across its box moves no residual by more than the
    noise), else "trades off with" the freed terms it is nearly a combination of. A frozen term would otherwise be
    placed by the prior, a bound or wherever the search stops along the valley, and a run of another shape pays for
    where it stopped (benchmarks/VALIDATION.md, s12-fit: Qwen TP2 -> Llama TP1 +2.7 to +8.4 % E2E across landing
    points whose Qwen loss differs by 0.0003)."""
    p = jac.shape[1]
    need = max(FLAT, noise / UNDETERMINED)
    norms = np.linalg.norm(jac, axis=0) if p else np.zeros(0)
    chosen: list[int] = []
    frozen: dict[str, str] = {}
    todo = [i for i in range(p) if norms[i] >= need]
    frozen |= {names[i]: "flat" for i in range(p) if i not in todo}
    while todo:
        q = np.linalg.qr(jac[:, chosen])[0] if chosen else np.zeros((jac.shape[0], 0))
        rest = {i: float(np.linalg.norm(jac[:, i] - q @ (q.T @ jac[:, i]))) for i in todo}
        i = max(todo, key=lambda k: (rest[k], -k))
        todo.remove(i)
        if rest[i] >= need:
            chosen.append(i)
        else:
            frozen[names[i]] = "trades off with " + ", ".join(names[k] for k in chosen)
    return sorted(chosen), frozen


def diagnose(
    jac: np.ndarray, r: np.ndarray, names: Sequence[str], widths: Sequence[float], runs: Sequence[np.ndarray]
) -> dict[str, Any]:
    """Standard deviations (in each term's units), undetermined terms, trading pairs, per-run RMS log error."""
    n, p = jac.shape
    cov, null, rank = _covariance(jac)
    s2 = float(r @ r) / max(1, n - rank)
    cov = cov * s2
    # terms that move along a direction no residual sees (JᵀJ singular there): any amount of that move fits as
    # well, so their standard deviation is unbounded (a pseudo-inverse would report the small sd of the rest)
    free = np.diag(null) > NULL_LOAD if p else np.zeros(0, dtype=bool)
    # no residual moves with the term (beyond float noise: 1e-6 in log-ratio across its whole box): nothing pins it
    flat = np.abs(jac).max(axis=0) < FLAT if p else np.zeros(0, dtype=bool)
    sd_u = np.where(flat | free, math.inf, np.sqrt(np.clip(np.diag(cov), 0.0, None)))
    out: dict[str, Any] = {
        "sd": {k: _num(float(s) * w) for k, s, w in zip(names, sd_u, widths, strict=True)},
        "undetermined": [k for k, s in zip(names, sd_u, strict=True) if s > UNDETERMINED],
        "tradeoffs": [],
        "rms_log_error": [_num(float(np.sqrt(np.mean(x**2)))) if x.size else None for x in runs],
    }
    for i in range(p):
        for j in range(i + 1, p):
            if flat[i] or flat[j]:
                continue
            if free[i] and free[j]:  # both move along the free directions: their correlation is those directions'
                c = float(null[i, j] / math.sqrt(null[i, i] * null[j, j]))
            elif free[i] or free[j] or sd_u[i] == 0 or sd_u[j] == 0:
                continue
            else:
                c = float(cov[i, j] / (sd_u[i] * sd_u[j]))
            if abs(c) > TRADEOFF:
                out["tradeoffs"].append([names[i], names[j], round(c, 3)])
    return out


def _covariance(jac: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(JᵀJ)⁻¹ over the directions the residuals determine, the projector onto those they do not (singular
    values below SINGULAR × the largest), and the rank — from the SVD of J."""
    p = jac.shape[1]
    if p == 0:
        return np.zeros((0, 0)), np.zeros((0, 0)), 0
    _, sv, vt = np.linalg.svd(jac, full_matrices=True)
    keep = np.zeros(p, dtype=bool)
    keep[: sv.size] = sv > SINGULAR * (sv.max() if sv.size else 0.0)
    v_det, v_null = vt[keep].T, vt[~keep].T
    cov = (v_det / sv[keep[: sv.size]] ** 2) @ v_det.T
    return cov, v_null @ v_null.T, int(keep.sum())


def _num(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def summary_lines(diag: dict[str, Any]) -> list[str]:
    """Plain-text lines for the CLI: what the runs leave undetermined, and which terms trade off."""
    short = lambda path: path.rsplit(".", 1)[-1]  # noqa: E731
    if not diag:
        return ["fit quality not computed: --max-evals leaves no replay per term beyond the fit's own"]
    lines = [
        "± 1 sd: " + ", ".join(f"{short(k)} {'∞' if v is None else f'{v:.3g}'}" for k, v in diag.get("sd", {}).items())
    ]
    if diag.get("undetermined"):
        lines.append("not determined by these runs: " + ", ".join(short(k) for k in diag["undetermined"]))
    for a, b, c in diag.get("tradeoffs", []):
        lines.append(f"trade off (correlation {c:+.2f}): {short(a)} and {short(b)}")
    return lines
