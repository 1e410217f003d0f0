"""The screening run's exact requests and the demand bound on the instance count.

Every request that meets the SLO has a deadline (first token by `arrival + T_ttft`; completion by
`arrival + T_ttft + (output-1)·T_tpot`, or `arrival + T_e2el`), all of its work runs between its arrival
and that deadline, and n instances do at most n busy-seconds per second. So for every window [s, t]: work
of the requests released at >= s with deadline <= t, less the K largest (K = requests allowed to miss: by
attainment, or by the percentile targets), <= n·(t − s). The work per request is a lower bound from the
cost-model floor (`sim.tools.planner.floors`): κ per token (prefill or decode), c_d per decode token (the
best-case batch), prompt tokens at κ plus decodes at c_d for `fcfs` (it never mixes prefill and decode in
one iteration). This is finite-horizon: it holds for a short screening run, where an overloaded cluster
can still meet the SLO because the backlog never builds up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.config.scenario import load_scenario
from sim.tools.planner.floors import TOL, Floors
from sim.tools.planner.slo import SLOSpec
from sim.workload.generate import Requests, build_requests

S_GRID, T_GRID = 24, 64  # window starts and ends tried by the demand bound (any subset is sound)


@dataclass
class Screen:
    """The exact requests of the screening run (shared by every configuration) and cached window sums."""

    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    _sums: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, base: dict[str, Any]) -> Screen:
        """Build from a scenario dict whose `workload` and `seed` are the screening run's."""
        data = {k: v for k, v in base.items() if k not in ("hardware", "scheduler")}
        data.setdefault("hardware", "h100-sxm")  # the workload does not depend on the hardware
        rq: Requests = build_requests(load_scenario(data))
        return cls(rq.arrival_s, rq.prompt_tokens.astype(np.float64), rq.output_tokens.astype(np.float64))

    def __len__(self) -> int:
        return len(self.arrival)

    def measure(self, name: str) -> np.ndarray:
        """Per request: prompt tokens ('p'), decode steps ('d'), both ('pd'), or the context its decode steps
        read ('ctx': the sum over steps s = 1..o−1 of p + s)."""
        d = np.maximum(self.output - 1, 0)
        if name == "ctx":
            return d * self.prompt + d * (d + 1) / 2
        return {"p": self.prompt, "d": d, "pd": self.prompt + d}[name]

    def window_sums(self, fam: Family, measure: str) -> tuple[np.ndarray, np.ndarray]:
        """For windows [s, t]: (sum of the measure over requests arriving at >= s with deadline <= t, less
        the largest `len − fam.need` of them; t − s). Cached per family and measure."""
        k = len(self) - fam.need
        key = (fam.name, fam.kind, hash(fam.deadline.tobytes()), k, measure)
        got = self._sums.get(key)
        if got is not None:
            return got
        a, n, x = self.arrival, len(self.arrival), self.measure(measure)
        starts = np.unique(a[np.unique(np.linspace(0, n - 1, S_GRID).round().astype(np.int64))])
        sums, durs = [], []
        for s in starts:
            idx = np.flatnonzero(a >= s)
            idx = idx[np.argsort(fam.deadline[idx], kind="stable")]
            ds, xs = fam.deadline[idx], x[idx]
            cum = np.cumsum(xs)
            for j in np.unique(np.linspace(0, len(idx) - 1, T_GRID).round().astype(np.int64)):
                t = ds[j]
                end = int(np.searchsorted(ds, t, side="right"))  # every request due by t
                dur = t - s
                if dur <= 0 or end <= k:
                    continue
                top = float(np.partition(xs[:end], end - k)[end - k :].sum()) if k > 0 else 0.0
                sums.append(float(cum[end - 1]) - top)
                durs.append(dur)
        got = (np.array(sums), np.array(durs))
        self._sums[key] = got
        return got


@dataclass(frozen=True)
class Family:
    """Requests that must meet a deadline: `first` token or `done`, how many at least (`need`)."""

    name: str
    kind: str  # "first" | "done"
    deadline: np.ndarray
    need: int


def _pct_count(q: float, m: int) -> int:
    """Fewest of m values at or below a limit when their linear-interpolated percentile q is (numpy's)."""
    return 0 if m <= 0 else math.floor(q * (m - 1) * (1 - TOL)) + 1


def families(slo: SLOSpec, sc: Screen, rejected: np.ndarray, exact_rejections: bool) -> list[Family]:
    """Deadline families implied by the SLO for the screening run: by attainment and by each percentile target.

    Percentile targets are over completed requests, so they need the rejected set exactly
    (`exact_rejections`); attainment counts rejected requests as misses and does not.
    """
    a, o, n = sc.arrival, sc.output, len(sc)
    pad = lambda d: a + d * (1 + TOL) + TOL  # noqa: E731 - a deadline, float-tolerant
    out: list[Family] = []
    limit = {m: slo.limit(m) for m in ("ttft", "tpot", "e2el")}
    if slo.attainment is not None and slo.scenario_slo():
        need = max(0, math.ceil(slo.attainment * n - 1e-6))
        t, p, e = limit["ttft"], limit["tpot"], limit["e2el"]
        if t is not None:
            out.append(Family("attainment:ttft", "first", pad(np.full(n, t.limit_s)), need))
        done = np.full(n, math.inf)
        if t is not None and p is not None:
            done = np.minimum(done, t.limit_s + np.maximum(o - 1, 0) * p.limit_s)
        if e is not None:
            done = np.minimum(done, e.limit_s)
        if np.isfinite(done).all():
            out.append(Family("attainment:done", "done", pad(done), need))
    if exact_rejections:
        ok = ~rejected
        m_all, m_multi, single = int(ok.sum()), int((ok & (o > 1)).sum()), int((ok & (o <= 1)).sum())
        pct = [t for t in slo.targets if t.stat != "mean"]
        for t in pct:
            if t.metric == "ttft":
                out.append(Family(f"{t}", "first", pad(np.full(n, t.limit_s)), _pct_count(t.quantile, m_all)))
            if t.metric == "e2el":
                out.append(Family(f"{t}", "done", pad(np.full(n, t.limit_s)), _pct_count(t.quantile, m_all)))
        for t in (x for x in pct if x.metric == "ttft"):
            for p in (x for x in pct if x.metric == "tpot"):
                both = _pct_count(t.quantile, m_all) + _pct_count(p.quantile, m_multi) + single - m_all
                d = t.limit_s + np.maximum(o - 1, 0) * p.limit_s
                out.append(Family(f"{t}&{p}", "done", pad(d), both))
    return [f for f in out if f.need > 0]


def demand_bound(
    sc: Screen, fams: list[Family], fl: Floors, mixes: bool, prefill_work: bool, attn: float = 0.0
) -> dict[str, float]:
    """Least instances (as a real number) the screening run needs: 'total', and the 'prefill' and 'decode'
    pools (for shapes that split them: prefill runs only on the first, decodes only on the second).
    `attn`: seconds per decode-context token every iteration pays on top of F (0 when not known)."""
    best = {"total": 0.0, "prefill": 0.0, "decode": 0.0}
    for f in fams:
        if f.kind == "first":
            if prefill_work:
                x, dur = sc.window_sums(f, "p")
                if len(dur):
                    r = float(np.max(fl.kappa * x / dur))
                    best["total"], best["prefill"] = max(best["total"], r), max(best["prefill"], r)
            continue
        xt, dur = sc.window_sums(f, "pd" if prefill_work else "d")
        if not len(dur):
            continue
        xd, _ = sc.window_sums(f, "d")
        xa = sc.window_sums(f, "ctx")[0] if attn > 0 else np.zeros(len(dur))
        dec = float(np.max((fl.c_d * xd + attn * xa) / dur))
        tot = max(float(np.max((fl.kappa * xt + attn * xa) / dur)), dec)
        if not mixes and prefill_work:
            xp, _ = sc.window_sums(f, "p")
            tot = max(tot, float(np.max((fl.kappa * xp + fl.c_d * xd + attn * xa) / dur)))
        best["total"], best["decode"] = max(best["total"], tot), max(best["decode"], dec)
    return best
