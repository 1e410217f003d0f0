"""Analytic bounds that prune the planner's space before anything is simulated.

In order, each cheaper than a simulation and each stated as what it proves:
1. memory fit — `sim.engine.capacity` refuses configurations whose weights do not fit (exact);
2. KV length — requests longer than one instance's KV cache are rejected, so if more of them than the
   attainment target allows exist, no instance count helps (exact);
3. latency floors — a request's TTFT is at least its prompt's prefill alone on an idle instance, its
   TPOT at least a batch-of-one decode step at its context; a percentile of those floors above the
   limit rules the configuration out at any size (a lower bound, from the cost model);
4. roofline throughput — busy time per request is at least its prefill tokens at the cheapest
   per-token prefill cost plus (or, for schedulers that mix prefill and decode, max with) its decode
   steps at the cheapest per-sequence decode cost at the largest batch, plus KV reads; instances
   n >= λ·W (a lower bound; 5% slack for the interpolation);
5. queueing estimate — a Little's-law fixed point for the decode batch (decodes stall while prompts
   prefill; chunked prefill shares each iteration's budget with decodes) and an M/G/c (Allen–Cunneen)
   wait for prefill across the n instances skip sizes whose *estimated* mean TTFT or TPOT exceeds
   `margin` × the limit. This one
   is an approximation, not a bound; the margin keeps it conservative (PLANNER.md checks it against an
   exhaustive grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.costmodel import CostModel
from sim.engine import build_cost_model, capacity
from sim.errors import ServesimError
from sim.planner_slo import SLOSpec
from sim.planner_space import Config
from sim.planner_traffic import Traffic
from sim.scenario import load_scenario

try:  # the queueing package's M/G/c, when it is there
    from queueing import ggc_allen_cunneen as _ggc_lib
except ImportError:  # pragma: no cover - depends on the tree's state
    _ggc_lib = None

SLACK = 0.95  # the roofline bound is lowered 5% to cover interpolation between probed batch sizes
NO_MIX = frozenset({"fcfs"})  # schedulers that never put prefill and decode in one iteration
SAMPLE = 4000


def erlang_c(c: int, a: float) -> float:
    """P(wait) in M/M/c with offered load a < c (Erlang-B recursion, numerically stable)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def ggc_wait(lam: float, es: float, ca2: float, cs2: float, c: int) -> float:
    """Allen–Cunneen G/G/c mean wait: (ca² + cs²)/2 · C(c, a)·E[S]/(c − a); inf when a >= c."""
    a = lam * es
    if a >= c:
        return math.inf
    if _ggc_lib is not None:
        try:
            return float(_ggc_lib(lam, es, ca2, cs2, c).wait_s)
        except (TypeError, AttributeError, ValueError):  # another signature: use the formula below
            pass
    return 0.5 * (ca2 + cs2) * erlang_c(c, a) * es / (c - a)


@dataclass
class Bounds:
    """What the analytic checks found for one configuration."""

    config: Config
    prune_kind: str | None = None  # memory | kv_length | latency_floor
    prune_why: str = ""
    kv_tokens: int = 0
    n_min: dict[str, int] = field(default_factory=lambda: {"total": 1, "prefill": 1, "decode": 1})
    floors: dict[str, float] = field(default_factory=dict)  # SLO column -> floor value
    work_s: float = 0.0  # busy seconds per request, lower bound
    # inputs of the queueing estimate
    prefill_mean_s: float = 0.0
    prefill_scv: float = 0.0
    decode_ctx: float = 0.0  # mean context of a decoding sequence (weighted by output length)
    decode_steps: float = 0.0  # mean decode steps per request
    max_seqs: int = 256
    chunk: int | None = None  # token budget of chunked-prefill schedulers
    prompt_mean: float = 0.0
    cost: Any = None


def _prefill_time(cm: CostModel, p: int, chunk: int | None) -> float:
    if chunk is None or p <= chunk:
        return cm.iteration([(p, 0)], 0, 0)
    return sum(cm.iteration([(min(chunk, p - c), c)], 0, 0) for c in range(0, p, chunk))


def _sample(tr: Traffic) -> tuple[np.ndarray, np.ndarray]:
    n = len(tr.prompt)
    idx = np.linspace(0, n - 1, min(n, SAMPLE)).astype(np.int64)
    return tr.prompt[idx].astype(np.float64), tr.output[idx].astype(np.float64)


def analyse(cfg: Config, base: dict[str, Any], traffic: Traffic, slo: SLOSpec) -> Bounds:
    """Memory fit, KV length, latency floors and the roofline minimum of instances for one configuration."""
    b = Bounds(cfg)
    sched = cfg.scheduler_dict
    data = {**base, "hardware": cfg.gpu, "scheduler": sched}
    data["cluster"] = {**base.get("cluster", {}), "instances": 1, "tp": cfg.tp}
    sc = load_scenario(data)
    try:
        cap = capacity(sc)
    except ServesimError as e:
        b.prune_kind, b.prune_why = "memory", str(e).split(" — ")[0]
        return b
    b.kv_tokens = cap.tokens
    cm = build_cost_model(sc)
    b.cost = cm
    p, o = _sample(traffic)
    limit = min(b.kv_tokens, sc.model_spec.max_context)
    too_long = float(np.mean(p + o > limit))
    allowed = 1.0 - (slo.attainment if slo.attainment is not None else 1.0)
    if too_long > allowed:
        b.prune_kind = "kv_length"
        b.prune_why = f"{too_long:.1%} of requests exceed one instance's {limit} KV/context tokens"
        return b
    chunk = sched.get("token_budget")
    # prefill alone, on a grid of prompt lengths, interpolated (f grows with p)
    grid = np.unique(np.geomspace(max(1, p.min()), p.max(), 48).round().astype(np.int64))
    fgrid = np.array([_prefill_time(cm, int(x), chunk) for x in grid])
    f = np.interp(p, grid, fgrid)
    g = cm.decode_run(1, p + o / 2)  # batch-of-one decode step at the mean context of the request
    floors = {"ttft": f, "tpot": np.where(o > 1, g, np.nan), "e2el": f + (o - 1) * g}
    meets = np.ones(len(p), dtype=bool)
    for t in slo.targets:
        arr = floors.get(t.metric)
        if arr is None:
            continue
        v = arr[~np.isnan(arr)]
        b.floors[t.column] = float(v.mean() if t.stat == "mean" else np.quantile(v, t.quantile)) * 0.98
        thr = slo.limit(t.metric)
        if thr is not None:
            meets &= np.nan_to_num(arr, nan=0.0) * 0.98 <= thr.limit_s
    bad = [
        f"{c} floor {v:.3g}s > {t.limit_s:g}s"
        for t in slo.targets
        for c, v in b.floors.items()
        if c == t.column and v > t.limit_s
    ]
    if slo.attainment is not None and meets.mean() < slo.attainment:
        bad.append(f"only {meets.mean():.1%} of requests can meet the SLO even on an idle instance")
    if bad:
        b.prune_kind, b.prune_why = "latency_floor", "; ".join(bad)
        return b
    # roofline work per request
    max_seqs = int(sched.get("max_num_seqs", 256))
    qmax = chunk or max(int(sched.get("max_num_batched_tokens", 8192)), int(p.max()))
    qs = np.unique(np.geomspace(16, qmax, 24).round().astype(np.int64))
    c_p = min(cm.iteration([(int(q), 0)], 0, 0) / q for q in qs)
    bs = np.unique(np.geomspace(1, max_seqs, 16).round().astype(np.int64))
    c_d = min(float(cm.decode_run(int(x), np.zeros(1))[0]) / x for x in bs)
    a_ctx = float(cm.decode_run(1, np.array([1e5]))[0] - cm.decode_run(1, np.zeros(1))[0]) / 1e5
    steps = np.maximum(o - 1, 0)
    w_p = float(np.mean(p)) * c_p
    w_d = float(np.mean(steps)) * c_d + a_ctx * float(np.mean(steps * p + steps * (steps + 1) / 2))
    b.work_s = w_p + w_d if sched["kind"] in NO_MIX else max(w_p, w_d)
    lam = traffic.rate
    b.n_min = {
        "total": max(1, math.ceil(lam * b.work_s * SLACK - 1e-9)),
        "prefill": max(1, math.ceil(lam * w_p * SLACK - 1e-9)),
        "decode": max(1, math.ceil(lam * w_d * SLACK - 1e-9)),
    }
    b.prefill_mean_s = float(f.mean())
    b.prefill_scv = float(f.var() / max(f.mean(), 1e-12) ** 2)
    b.decode_ctx = float(np.sum(steps * (p + o / 2)) / max(np.sum(steps), 1.0))
    b.decode_steps = float(np.mean(steps))
    b.max_seqs = max_seqs
    b.chunk = chunk
    b.prompt_mean = float(p.mean())
    return b


@dataclass(frozen=True)
class Estimate:
    ttft_s: float
    tpot_s: float
    rho: float
    why: str = ""  # non-empty when the size should be skipped


def estimate(b: Bounds, traffic: Traffic, slo: SLOSpec, n: int, margin: float) -> Estimate:
    """Approximate mean TTFT/TPOT of `n` colocated instances; `why` says if they miss by > margin."""
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
            why.append(f"est. mean {metric} {est:.3g}s > {margin:g}×{t.limit_s:g}s")
    return Estimate(ttft, tpot, rho, "; ".join(why))
