"""What the planner may conclude without simulating: sound bounds (prune), and an estimate (order only).

Everything here is about the *screening run* of a candidate — the scenario `sim.tools.planner.search.scenario_for`
builds (seed 0, the first `--search-requests` requests) — and is computed from its exact requests
(`sim.workload.generate.build_requests`), so a bound speaks about the very run the search would simulate.

**Bounds** (each a necessary condition for that run to meet the SLO; a configuration or instance count
failing one is infeasible, not merely unlikely):

1. memory fit — `sim.core.engine.capacity` refuses configurations whose weights do not fit (the run fails);
2. rejections — requests longer than `max_context` or than one instance's KV cache less its watermark are
   rejected by every instance (the engine's own test); a rejected request misses the SLO, so more of them
   than the attainment target allows rules the configuration out at every size;
3. latency floors — TTFT, TPOT and E2EL lower bounds per request from the cost-model floor F (below); a
   percentile or mean of the floors above its limit, or fewer requests able to meet every threshold than
   the attainment target needs, rules the configuration out at every size;
4. demand bound on the instance count — every request that meets the SLO has a deadline (first token by
   `arrival + T_ttft`; completion by `arrival + T_ttft + (output-1)·T_tpot`, or `arrival + T_e2el`), all
   of its work runs between its arrival and that deadline, and n instances do at most n busy-seconds per
   second. So for every window [s, t]: work of the requests released at >= s with deadline <= t, less the
   K largest (K = requests allowed to miss: by attainment, or by the percentile targets), <= n·(t − s).
   The work per request is a lower bound from F: κ per token (prefill or decode), c_d per decode token
   (the best-case batch), prompt tokens at κ plus decodes at c_d for `fcfs` (it never mixes prefill and
   decode in one iteration). This is finite-horizon: it holds for a short screening run, where an
   overloaded cluster can still meet the SLO because the backlog never builds up.

**Cost-model floor** F(m): the iteration breakdown (`CostModel.breakdown`) of a prefill-only batch of m
tokens and of a decode-only batch of m sequences at zero context, with the attention and LM-head terms
(non-negative) dropped, whichever is smaller. *Assumption*, true of the linear, roofline and table kinds
by construction (their remaining terms depend only on the iteration's token count, or for `linear` are
linear in prefill and decode tokens) and checked on random batches in tests/test_planner.py: **every
iteration with m tokens costs at least F(m)**. From it, over the m an iteration can hold (<= M, from the
scheduler): κ = min F(m)/m, F_min = min F(m), c_d = min over batches b <= max_num_seqs of min_{m>=b} F(m)/b.
No interpolation, slack or steady-state argument is involved.

**Estimate** (not a bound, never used to exclude anything): a Little's-law fixed point for the decode
batch and an M/G/c (Allen–Cunneen) wait for prefill give approximate mean TTFT/TPOT of n colocated
instances; the search uses it only to choose where along the instance axis to simulate first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.config.scenario import Scenario, load_scenario
from sim.core.engine import build_cost_model, capacity
from sim.core.registry import SCHEDULERS
from sim.costmodel.models import CostModel, decode_coeffs
from sim.errors import ServesimError
from sim.tools.planner.slo import SLOSpec
from sim.tools.planner.space import Config
from sim.tools.planner.traffic import Traffic
from sim.workload.generate import Requests, build_requests

try:  # the queueing package's M/G/c, when it is there
    from queueing import ggc_allen_cunneen as _ggc_lib
except ImportError:  # pragma: no cover - depends on the tree's state
    _ggc_lib = None

DROP = ("attn_prefill", "attn_decode", "lm_head")  # breakdown terms left out of the floor F (all >= 0)
TOL = 1e-9  # relative float tolerance, always in the direction that weakens a bound
S_GRID, T_GRID = 24, 64  # window starts and ends tried by the demand bound (any subset is sound)
SAMPLE = 4000  # requests the estimate's statistics are taken from


# -- the cost-model floor ------------------------------------------------------------------------------
def _dense(parts: dict[str, float]) -> float:
    return float(sum(v for k, v in parts.items() if k not in DROP))


_FLOOR_CACHE: dict[tuple[str, ...], np.ndarray] = {}


def floor_curve(cm: CostModel, key: tuple[str, ...], m_max: int) -> np.ndarray:
    """F[m] for m = 0..m_max (F[0] = inf); cached per cost model `key` and extended on demand."""
    have = _FLOOR_CACHE.get(key)
    if have is not None and len(have) > m_max:
        return have[: m_max + 1]
    start = 1 if have is None else len(have)
    new = np.array(
        [min(_dense(cm.breakdown([(m, 0)], 0, 0)), _dense(cm.breakdown([], m, 0))) for m in range(start, m_max + 1)],
        dtype=np.float64,
    )
    full = np.concatenate(([math.inf] if have is None else have, new))
    _FLOOR_CACHE[key] = full
    return full


@dataclass(frozen=True)
class Floors:
    """Per-iteration lower bounds of one cost model for iterations of at most `m_max` tokens."""

    m_max: int
    kappa: float  # seconds per token, any token (min over m of F(m)/m)
    f_min: float  # seconds per iteration (min over m of F(m))
    c_d: float  # seconds per decode token at the best batch <= max_batch
    below: np.ndarray  # below[m] = min_{m <= m' <= m_max} F(m'): an iteration holding >= m tokens costs this

    @classmethod
    def of(cls, f: np.ndarray, max_batch: int) -> Floors:
        m = np.arange(len(f), dtype=np.float64)
        below = np.minimum.accumulate(f[::-1])[::-1]
        b = np.arange(1, min(max_batch, len(f) - 1) + 1)
        return cls(
            m_max=len(f) - 1,
            kappa=float(np.min(f[1:] / m[1:])),
            f_min=float(np.min(f[1:])),
            c_d=float(np.min(below[b] / b)),
            below=below,
        )


def attention_coefficient(cm: CostModel, max_batch: int) -> float:
    """b when the model prices decode attention as exactly b per context token at every batch size
    (`decode_coeffs`: roofline kinds without a measured decode-attention curve; 0 for `linear`), else 0."""
    lo, hi = decode_coeffs(cm, 1), decode_coeffs(cm, max_batch)
    if lo is None or hi is None or lo[1] != hi[1]:
        return 0.0
    return max(0.0, float(lo[1]))


def _cost_key(sc: Scenario) -> tuple[str, ...]:
    return (
        sc.model_spec.model_dump_json(),
        sc.gpu_spec.model_dump_json(),
        str(sc.cluster.tp),
        sc.cost_model.model_dump_json(),
        str(sc.base_dir),
    )


def _iteration_tokens(sched: dict[str, Any], longest: int, max_seqs: int) -> int:
    """Most tokens one iteration can hold (M): from the scheduler's budget, batch and the longest request."""
    caps = SCHEDULERS.caps(sched["kind"])  # what the scheduler declares about its iterations
    budgets = [int(v) for k, v in sched.items() if k in ("token_budget", "max_num_batched_tokens")]
    if caps.prefill_chunk:  # every decode (<= max_num_seqs), then chunks within what is left of the budget
        return max([max_seqs, *budgets])
    if caps.whole_prompts:  # prompts up to the budget, or one longer prompt alone (a recompute: prompt + output)
        return max([max_seqs, longest, *budgets])
    return max([max_seqs, *budgets]) + longest  # other schedulers: a generous superset


def _prefix_caching(sc: Scenario) -> bool:
    """Whether any prefix-cache setting is on (then prompt tokens may be skipped: no prefill work is assumed)."""

    def walk(x: Any, key: str = "") -> bool:
        if isinstance(x, dict):
            return any(walk(v, k) for k, v in x.items())
        if isinstance(x, list):
            return any(walk(v, key) for v in x)
        return "prefix" in key.lower() and bool(x)

    return walk(sc.model_dump(mode="json"))


# -- the screening run's requests and the demand bound ----------------------------------------------------
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


# -- per configuration ------------------------------------------------------------------------------------
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
    caps = SCHEDULERS.caps(sched["kind"])
    if not prefill_work:
        ttft = np.zeros(len(p))
    elif caps.whole_prompts:  # one iteration holding the whole prompt
        ttft = fl.below[np.minimum(p.astype(np.int64), fl.m_max)]
    elif caps.prefill_chunk:  # chunks of at most the budget, each an iteration of at least F_min
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
            bad.append(f"{t.column} floor {val:.3g}s > {t.limit_s:g}s")
    if slo.attainment is not None and slo.scenario_slo():
        meets = ok.copy()
        for metric in ("ttft", "tpot", "e2el"):
            t = slo.limit(metric)
            if t is not None:
                meets &= np.nan_to_num(floors[metric], nan=0.0) * (1 - TOL) <= t.limit_s
        need = math.ceil(slo.attainment * len(o) - 1e-6)
        if meets.sum() < need:
            bad.append(f"only {meets.mean():.1%} of requests can meet the SLO even on an idle instance")
    return bad


def analyse(cfg: Config, base: dict[str, Any], traffic: Traffic, slo: SLOSpec, screen: Screen | None = None) -> Bounds:
    """Memory fit, rejections, latency floors and the demand bound of one configuration (see the module doc).

    `base` is the scenario every candidate starts from; `screen` the screening run's requests (built from
    `base` when not given). `traffic` only feeds the estimate's arrival statistics.
    """
    b = Bounds(cfg)
    screen = screen or Screen.of(base)
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
    max_seqs = int(sched.get("max_num_seqs", cap.num_blocks))
    max_batch = max(1, min(max_seqs, cap.num_blocks))
    m_max = _iteration_tokens(sched, int(total.max()), max_batch)
    fl = Floors.of(floor_curve(cm, _cost_key(sc), m_max), max_batch)
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


# -- the estimate (ordering only) ---------------------------------------------------------------------------
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
            why.append(f"est. mean {metric} {est:.3g}s > {margin:g}×{t.limit_s:g}s")
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
