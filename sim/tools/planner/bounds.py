"""What the planner may conclude without simulating: sound bounds that prune configurations and sizes.

Everything here is about the *screening run* of a candidate — the scenario `sim.tools.planner.request.scenario_for`
builds (seed 0, the first `--search-requests` requests) — and is computed from its exact requests
(`sim.workload.generate.build_requests`), so a bound speaks about the very run the search would simulate.

**Bounds** (each a necessary condition for that run to meet the SLO; a configuration or instance count
failing one is infeasible, not merely unlikely):

1. memory fit — `sim.core.engine.capacity` refuses configurations whose weights do not fit (the run fails);
2. rejections — requests longer than `max_context` or than one instance's KV cache less its watermark are
   rejected by every instance (the engine's own test); a rejected request misses the SLO, so more of them
   than the attainment target allows rules the configuration out at every size;
3. latency floors — TTFT, TPOT and E2EL lower bounds per request from the cost-model floor F
   (`sim.tools.planner.floors`); a percentile or mean of the floors above its limit, or fewer requests able
   to meet every threshold than the attainment target needs, rules the configuration out at every size;
4. demand bound on the instance count (`sim.tools.planner.demand`).

`analyse` also gathers the inputs of the estimate (`sim.tools.planner.estimate`), which only orders the search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.config.scenario import Scenario, load_scenario
from sim.core.engine import build_cost_model, capacity
from sim.core.registry import SCHEDULERS
from sim.costmodel.models import CostModel
from sim.errors import ServesimError
from sim.tools.planner.demand import Screen, demand_bound, families
from sim.tools.planner.floors import (
    TOL,
    FloorJob,
    Floors,
    attention_coefficient,
    cost_key,
    floor_curve,
    iteration_tokens,
)
from sim.tools.planner.slo import SLOSpec, secs
from sim.tools.planner.space import Config
from sim.tools.planner.traffic import Traffic

SAMPLE = 4000  # requests the estimate's statistics are taken from


def _prefix_caching(sc: Scenario) -> bool:
    """Whether any prefix-cache setting is on (then prompt tokens may be skipped: no prefill work is assumed)."""

    def walk(x: Any, key: str = "") -> bool:
        if isinstance(x, dict):
            return any(walk(v, k) for k, v in x.items())
        if isinstance(x, list):
            return any(walk(v, key) for v in x)
        return "prefix" in key.lower() and bool(x)

    return walk(sc.model_dump(mode="json"))


@dataclass
class Bounds:
    """What the analytic checks found for one configuration."""

    config: Config
    prune_kind: str | None = None  # memory | kv_length | latency_floor
    prune_why: str = ""
    kv_tokens: int = 0
    n_min: dict[str, int] = field(default_factory=lambda: {"total": 1, "prefill": 1, "decode": 1})
    demand: dict[str, float] = field(default_factory=dict)  # the demand bound before rounding up
    floors: dict[str, float] = field(default_factory=dict)  # SLO column -> floor value
    work_s: float = 0.0  # busy seconds per request, lower bound (mean over the screening run)
    kappa: float = 0.0
    c_d: float = 0.0
    attn: float = 0.0  # seconds per decode-context token (affine cost models), else 0
    rejected: int = 0
    # inputs of the estimate (heuristic)
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


def _latency_floors(
    screen: Screen, fl: Floors, sched: dict[str, Any], prefill_work: bool, attn: float
) -> dict[str, np.ndarray]:
    p, o = screen.prompt, screen.output
    caps = SCHEDULERS.caps(sched["kind"])  # what the scheduler declares about its prefill
    if not prefill_work:
        ttft = np.zeros(len(p))
    elif caps.whole_prompts:  # one iteration holding the whole prompt
        ttft = fl.below[np.minimum(p.astype(np.int64), fl.m_max)]
    elif caps.prefill_chunk and sched.get(caps.prefill_chunk):  # chunks of at most the budget, each >= F_min
        ttft = np.maximum(np.ceil(p / int(sched[caps.prefill_chunk])) * fl.f_min, fl.kappa * p)
    else:  # at least one iteration, every token at least κ
        ttft = np.maximum(fl.f_min, fl.kappa * p)
    steps = np.maximum(o - 1, 0)
    step = fl.f_min + attn * (p + o / 2)  # mean over its decode steps: F_min plus its own context at least
    return {"ttft": ttft, "tpot": np.where(o > 1, step, np.nan), "e2el": ttft + steps * step}


def _check_floors(
    b: Bounds, floors: dict[str, np.ndarray], ok: np.ndarray, slo: SLOSpec, o: np.ndarray, exact: bool
) -> list[str]:
    """Reasons the floors alone miss the SLO (empty when they do not). Percentile and mean targets are over
    completed requests, so they are checked only when the rejected set is `exact`."""
    bad = []
    for t in slo.targets if exact else ():
        arr = floors.get(t.metric)
        if arr is None:
            continue
        v = arr[ok & ~np.isnan(arr)] * (1 - TOL)
        if not len(v):
            continue
        val = float(v.mean() if t.stat == "mean" else np.percentile(v, t.quantile * 100))
        b.floors[t.column] = val
        if val > t.limit_s:
            bad.append(f"{t.column} floor {secs(val)} > {secs(t.limit_s)}")
    if slo.attainment is not None and slo.scenario_slo():
        meets = ok.copy()
        for metric in ("ttft", "tpot", "e2el"):
            lim = slo.limit(metric)
            if lim is not None:
                meets &= np.nan_to_num(floors[metric], nan=0.0) * (1 - TOL) <= lim.limit_s
        need = math.ceil(slo.attainment * len(o) - 1e-6)
        if meets.sum() < need:
            bad.append(f"only {meets.mean():.1%} of requests can meet the SLO even on an idle instance")
    return bad


def one_instance(cfg: Config, base: dict[str, Any]) -> dict[str, Any]:
    """The scenario of one instance of `cfg` (what the bounds are computed on)."""
    data = {**base, "hardware": cfg.gpu, "scheduler": cfg.scheduler_dict}
    data["cluster"] = {**base.get("cluster", {}), "instances": 1, "tp": cfg.tp}
    return data


def _iteration_limits(sched: dict[str, Any], num_blocks: int, longest: int) -> tuple[int, int, int]:
    """(max_num_seqs, largest decode batch, most tokens one iteration can hold)."""
    max_seqs = int(sched.get("max_num_seqs", num_blocks))
    max_batch = max(1, min(max_seqs, num_blocks))
    return max_seqs, max_batch, iteration_tokens(sched, longest, max_batch)


def floor_jobs(configs: list[Config], base: dict[str, Any], screen: Screen) -> dict[tuple[str, ...], FloorJob]:
    """The cost-model floor curves `analyse` will need (per cost model, up to the longest iteration of any
    configuration using it), so they can be computed ahead on workers (`sim.tools.planner.floors.warm`)."""
    jobs: dict[tuple[str, ...], FloorJob] = {}
    longest = int((screen.prompt + screen.output).max()) if len(screen) else 1
    for cfg in configs:
        data = one_instance(cfg, base)
        sc = load_scenario(data)
        try:
            cap = capacity(sc)
        except ServesimError:
            continue  # `analyse` prunes it on memory
        m_max = _iteration_limits(cfg.scheduler_dict, cap.num_blocks, longest)[2]
        key = cost_key(sc)
        if key not in jobs or jobs[key].m_max < m_max:
            jobs[key] = FloorJob(data, str(sc.base_dir), m_max)
    return jobs


def analyse(cfg: Config, base: dict[str, Any], traffic: Traffic, slo: SLOSpec, screen: Screen | None = None) -> Bounds:
    """Memory fit, rejections, latency floors and the demand bound of one configuration (see the module doc).

    `base` is the scenario every candidate starts from; `screen` the screening run's requests (built from
    `base` when not given). `traffic` only feeds the estimate's arrival statistics.
    """
    b = Bounds(cfg)
    screen = screen or Screen.of(base)
    sched = cfg.scheduler_dict
    sc = load_scenario(one_instance(cfg, base))
    try:
        cap = capacity(sc)
    except ServesimError as e:
        b.prune_kind, b.prune_why = "memory", str(e).split(" — ")[0]
        return b
    b.kv_tokens = cap.tokens
    cm = build_cost_model(sc)
    b.cost = cm
    p, o, n = screen.prompt, screen.output, len(screen)
    # 2. rejections: the engine's own test (Instance.enqueue), on the exact requests
    total = p + o
    room = cap.num_blocks - int(sc.kv_cache.watermark * cap.num_blocks)
    exact = cfg.shape == "colocated"  # other shapes may reject differently (a prefill pool holds prompts only)
    rejected = (total > sc.model_spec.max_context) | (np.ceil(total / cap.block_size) > room)
    if not exact:
        rejected[:] = False
    b.rejected = int(rejected.sum())
    ok = ~rejected
    need = math.ceil(slo.attainment * n - 1e-6) if slo.attainment is not None and slo.scenario_slo() else 0
    if ok.sum() < need or not ok.any():
        b.prune_kind = "kv_length"
        limit = min(room * cap.block_size, sc.model_spec.max_context)
        b.prune_why = f"{rejected.mean():.1%} of requests exceed one instance's {limit} KV/context tokens"
        return b
    # the cost-model floor
    max_seqs, max_batch, m_max = _iteration_limits(sched, cap.num_blocks, int(total.max()))
    fl = Floors.of(floor_curve(cm, cost_key(sc), m_max), max_batch)
    b.kappa, b.c_d = fl.kappa, fl.c_d
    b.attn = attention_coefficient(cm, max_batch)
    prefill_work = not _prefix_caching(sc)
    mixes = SCHEDULERS.caps(sched["kind"]).mixes_prefill_decode
    # 3. latency floors
    floors = _latency_floors(screen, fl, sched, prefill_work, b.attn)
    bad = _check_floors(b, floors, ok, slo, o, exact)
    if bad:
        b.prune_kind, b.prune_why = "latency_floor", "; ".join(bad)
        return b
    # 4. demand bound (percentile families need the exact rejected set: the colocated engine's test)
    fams = families(slo, screen, rejected, exact_rejections=exact)
    b.demand = demand_bound(screen, fams, fl, mixes, prefill_work, b.attn)
    b.n_min = {k: max(1, math.ceil(v * (1 - TOL) - 1e-9)) for k, v in b.demand.items()}
    steps = np.maximum(o - 1, 0)
    pw = p if prefill_work else np.zeros(n)
    ctx = b.attn * float(np.mean(screen.measure("ctx")))
    per_req = [fl.kappa * float(np.mean(pw + steps)) + ctx, fl.c_d * float(np.mean(steps)) + ctx]
    if not mixes:
        per_req.append(fl.kappa * float(np.mean(pw)) + fl.c_d * float(np.mean(steps)) + ctx)
    b.work_s = max(per_req)
    _estimate_inputs(b, cm, screen, sched, max_seqs)
    return b


def _estimate_inputs(b: Bounds, cm: CostModel, screen: Screen, sched: dict[str, Any], max_seqs: int) -> None:
    """Statistics the estimate uses (prefill service time alone, decode context and steps)."""
    n = len(screen)
    idx = np.linspace(0, n - 1, min(n, SAMPLE)).astype(np.int64)
    p, o = screen.prompt[idx], screen.output[idx]
    chunk = sched.get("token_budget")
    grid = np.unique(np.geomspace(max(1, p.min()), p.max(), 48).round().astype(np.int64))
    f = np.interp(p, grid, np.array([_prefill_time(cm, int(x), chunk) for x in grid]))
    steps = np.maximum(o - 1, 0)
    b.prefill_mean_s = float(f.mean())
    b.prefill_scv = float(f.var() / max(f.mean(), 1e-12) ** 2)
    b.decode_ctx = float(np.sum(steps * (p + o / 2)) / max(np.sum(steps), 1.0))
    b.decode_steps = float(np.mean(steps))
    b.max_seqs = max_seqs
    b.chunk = chunk
    b.prompt_mean = float(p.mean())
