"""The estimate (not a bound, never used to exclude anything): approximate mean TTFT/TPOT of n instances.

A Little's-law fixed point for the decode batch and an M/G/c (Allen–Cunneen, from `queueing`) wait for
prefill give approximate mean TTFT/TPOT of n colocated instances; the search uses it only to choose where
along the instance axis to simulate first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from queueing.multi import ggc_allen_cunneen
from sim.tools.planner.bounds import Bounds
from sim.tools.planner.slo import SLOSpec, secs
from sim.tools.planner.traffic import Traffic


def ggc_wait(lam: float, es: float, ca2: float, cs2: float, c: int) -> float:
    """Allen–Cunneen G/G/c mean wait (`queueing.multi.ggc_allen_cunneen`), but inf when a = λE[S] >= c (the
    estimate ranks unstable sizes last instead of raising) and 0 when there is no load (λ or E[S] zero)."""
    if lam * es >= c:
        return math.inf
    if lam <= 0 or es <= 0:
        return 0.0
    return ggc_allen_cunneen(lam, es, ca2, cs2, c).wait_s


@dataclass(frozen=True)
class Estimate:
    ttft_s: float
    tpot_s: float
    rho: float
    why: str = ""  # non-empty when the estimate misses the SLO by more than the margin


def estimate(b: Bounds, traffic: Traffic, slo: SLOSpec, n: int, margin: float) -> Estimate:
    """Approximate mean TTFT/TPOT of `n` colocated instances; `why` says if they miss by > margin.

    An approximation (it has missed feasible sizes by more than 1.5×): the planner only orders its search
    with it and never skips a size because of it.
    """
    lam_i = traffic.rate / n
    cap = max(1.0, min(b.max_seqs, b.kv_tokens / max(b.decode_ctx, 1.0)))
    rho_p = lam_i * b.prefill_mean_s
    if rho_p >= 1:
        return Estimate(math.inf, math.inf, rho_p, f"prefill utilisation {rho_p:.2f} >= 1")
    batch, step = 1.0, 0.0
    for _ in range(60):  # Little's law: running decodes = rate × steps × time per step
        step = float(b.cost.decode_run(max(1, round(batch)), np.array([batch * b.decode_ctx]))[0])
        nxt = lam_i * b.decode_steps * step / (1 - rho_p)
        if nxt > cap:
            return Estimate(math.inf, math.inf, math.inf, f"decode needs a batch > {cap:.0f} (KV/max_num_seqs)")
        if abs(nxt - batch) < 1e-3 * max(1.0, batch):
            batch = nxt
            break
        batch = nxt
    tpot = step / (1 - rho_p)  # decodes stall while prompts are prefilled
    es = b.prefill_mean_s
    if b.chunk:  # chunked prefill shares each iteration with the running decodes
        per_iter = b.chunk - batch
        if per_iter <= 0:
            return Estimate(math.inf, tpot, math.inf, f"decodes fill the {b.chunk}-token budget")
        es += b.prompt_mean / per_iter * step
    rho = traffic.rate * es / n
    if rho >= 1:
        return Estimate(math.inf, tpot, rho, f"prefill utilisation {rho:.2f} >= 1")
    ttft = ggc_wait(traffic.rate, es, traffic.ca2, b.prefill_scv, n) + es + step / 2
    why = []
    for metric, est in (("ttft", ttft), ("tpot", tpot)):
        t = slo.limit(metric)
        if t is not None and est > margin * t.limit_s:
            why.append(f"est. mean {metric} {secs(est)} > {margin:g} × {secs(t.limit_s)}")
    return Estimate(ttft, tpot, rho, "; ".join(why))


def estimated_start(b: Bounds, traffic: Traffic, slo: SLOSpec, lo: int, hi: int, margin: float) -> int:
    """Where the estimate puts a colocated configuration's boundary: the smallest n in [lo, hi] whose estimate
    is within `margin` × the limits, else hi + 1 (nothing fits: the search then tries `hi` first)."""
    if b.cost is None:
        return lo
    for n in range(lo, hi + 1):
        if not estimate(b, traffic, slo, n, margin).why:
            return n
    return hi + 1
