"""The simulator checked against the closed forms: ``servesim check-queueing`` and its Python API.

Unlike the rest of ``queueing/`` this module runs the simulator (it imports ``sim``); the closed-form
modules stay free of ``sim`` and SimPy, and ``import queueing`` does not import this module.

For each *setup* we build the scenario that satisfies the formula's assumptions — one instance, Poisson
arrivals, the ``linear`` cost model, batch size 1 (``fcfs`` with ``max_num_seqs: 1``) or the batching
rule — run independent replications (seeds from ``numpy.random.SeedSequence``), delete a warm-up
prefix of each, and compare the mean with the theory through a t-interval over replication means.

How a token law becomes an M/G/1 service time. With ``max_num_seqs: 1`` a request runs alone: one
prefill iteration, then n − 1 decode iterations, and the next request is admitted at the iteration
boundary where it finishes. With the linear cost (base + P·prompt tokens + D·decoding sequences):

* prompt fixed at 1 token, base 0, P = c + a, D = a  ⇒  S = (c + a) + (n − 1)·a = c + a·n;
* any prompt, base a, P = D = 0                      ⇒  S = n·a (c = 0: every iteration costs a).

``queue_delay_s`` (arrival → first scheduled) is then exactly the FCFS wait in queue E[Wq].

Setups (``SETUPS``): ``mm1-geo`` (geometric tokens: an exact M/G/1, the discrete analogue of M/M/1 —
the engine's lattice-valued service cannot be exponential), ``md1``, ``mg1-azure`` (output lengths sampled
from the Azure 2023 conversation trace), ``mg1-azure-clip`` (the same, cut by ``admission.max_tokens``);
``dyn-batch``, ``dyn-batch-cap``, ``elastic-batch``, ``fixed-batch`` (1-token requests under the ``static``
scheduler: every batch is one iteration of τ0 + α·b, so the embedded-chain and Spitzer results are exact;
Inoue's bound is checked as a bound); ``mgc-jsq`` (c instances behind ``least_requests`` vs Allen–Cunneen
M/G/c: an approximation of a different system, reported, never asserted).

Verdict: exact rows need the theory inside the interval, bound rows need the bound not below it. Each
row shows its 95% interval; the verdict uses Bonferroni-widened intervals so that a correct simulator
fails a whole report (many rows) with probability at most 5%.
"""

from __future__ import annotations

import math
import os
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats

from queueing.batching import (
    dynamic_batching_bound,
    dynamic_batching_mean_wait,
    elastic_batching_mean_wait,
    fixed_batching_mean_wait,
)
from queueing.clipping import clipped_moments, mean_delay
from queueing.multi import mgc_allen_cunneen
from queueing.single import md1, mg1, mm1

__all__ = [
    "SETUPS",
    "CheckReport",
    "CheckRow",
    "Comparison",
    "Setup",
    "parse_rhos",
    "render_table",
    "run_checks",
]

Kind = Literal["exact", "bound", "approx"]

# ---------------------------------------------------------------------------------------- parameters
A = 0.01  # seconds per output token in every check (the roofline LLaMA-2-7B/A100 decode step is ~0.0105)
MD1_C, MD1_TOKENS = 0.05, 100  # M/D/1: S = c + a·n = 1.05 s
GEO_MEAN = 200  # mm1-geo: n ~ Geometric(1/200) on {1, 2, ...}
CLIP_N_MAX = 400  # mg1-azure-clip: ~20% of the Azure conversation outputs are cut
BATCH_ALPHA, BATCH_TAU0 = 0.01, 0.05  # batch time τ0 + α·b
FIXED_B = 8  # fixed batching: batch size
DYN_B_MAX = 8  # capped dynamic batching: most requests per batch
MGC_SERVERS = 4
AZURE_TRACE = "azure-conv"

# A tiny inline model and a GPU whose KV cache never binds (the checks must not preempt or reject).
_MODEL: dict[str, Any] = {
    "name": "queueing-check",
    "num_layers": 1,
    "hidden_size": 64,
    "num_heads": 4,
    "num_kv_heads": 4,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 1000,
    "max_context": 1 << 20,
}
_GPU: dict[str, Any] = {
    "name": "queueing-check-gpu",
    "memory_bytes": 10**12,
    "bf16_flops": 1e12,
    "mem_bw": 1e11,
    "intra_node_bw": 1e10,
    "host_link_bw": 1e10,
    "price_per_hour": 1.0,
    "tdp_w": 100,
}
_UNBOUNDED_BATCH = {"kind": "fcfs", "max_num_seqs": 1 << 30, "max_num_batched_tokens": 1 << 30}
_ONE_AT_A_TIME = {"kind": "fcfs", "max_num_seqs": 1}


@lru_cache(maxsize=1)
def azure_outputs() -> np.ndarray:
    """Output-token counts of the shipped Azure 2023 conversation trace (the population sampled from)."""
    from sim.workload.traces import load_trace, resolve_trace_path

    return load_trace(resolve_trace_path(AZURE_TRACE), "azure").output_tokens


def _prompt_one_cost(a: float, c: float) -> dict[str, Any]:
    """Linear cost giving S = c + a·n for a 1-token prompt and n output tokens."""
    return {"kind": "linear", "base_s": 0.0, "per_prefill_token_s": c + a, "per_decode_seq_s": a}


def _per_iteration_cost(a: float) -> dict[str, Any]:
    """Linear cost giving S = a·n whatever the prompt: every iteration costs a."""
    return {"kind": "linear", "base_s": a, "per_prefill_token_s": 0.0, "per_decode_seq_s": 0.0}


def _scenario(
    name: str,
    seed: np.random.SeedSequence,
    workload: dict[str, Any],
    cost: dict[str, Any],
    *,
    scheduler: dict[str, Any] | None = None,
    instances: int = 1,
    router: str = "round_robin",
    **extra: Any,
) -> dict[str, Any]:
    sc: dict[str, Any] = {
        "name": f"check-{name}",
        "seed": int(seed.generate_state(1)[0]),
        "model": _MODEL,
        "hardware": _GPU,
        "workload": workload,
        "cluster": {"instances": instances, "router": {"kind": router}},
        "scheduler": scheduler or _ONE_AT_A_TIME,
        "kv_cache": {"gpu_memory_utilization": 1.0, "reserve_gb": 0.0, "watermark": 0.0},
        "cost_model": cost,
        "engine": {"fast_forward": True, "timeline_interval_s": 1e12},  # one timeline sample: not needed here
    }
    sc.update(extra)
    return sc


def _poisson(lam: float, n: int, lengths: dict[str, Any]) -> dict[str, Any]:
    return {"num_requests": n, "arrival": {"kind": "poisson", "rate": lam}, "lengths": lengths}


def _azure_lengths() -> dict[str, Any]:
    return {"kind": "trace", "path": AZURE_TRACE, "format": "azure"}


# ------------------------------------------------------------------------------------------ setups
@dataclass(frozen=True)
class Comparison:
    """One row per ρ: a simulated metric (a column of ``Result.requests``) against a formula."""

    label: str
    metric: str  # "queue_delay_s" (arrival → first scheduled) or "e2el_s" (arrival → completion)
    kind: Kind  # exact: theory must lie in the CI; bound: must not lie below it; approx: reported only
    theory: Callable[[float], float]  # λ → seconds


@dataclass(frozen=True)
class Setup:
    """A simulator configuration that satisfies a formula's assumptions, and what to compare."""

    name: str
    title: str
    how: str  # the engine configuration, in words
    lam: Callable[[float], float]  # ρ → λ (each setup says what its ρ means)
    build: Callable[[float, np.random.SeedSequence, int, Path], dict[str, Any]]  # (λ, seed, n, tmp) → scenario
    comparisons: tuple[Comparison, ...]
    unavailable: Callable[[], str | None] = lambda: None  # a reason when the engine lacks what it needs
    verify: Callable[[Any], None] = lambda res: None  # checks on a finished run (e.g. clipping happened)


# mm1-geo: n ~ Geometric(p) on {1, 2, ...}, S = a·n: E[S] = a/p, E[S²] = a²(2 − p)/p². Exact M/G/1. The
# M/M/1 with the same mean has E[S²] = 2a²/p², so its wait is larger by the factor 2/(2 − p) (p/2 = 0.25%).
_P_GEO = 1.0 / GEO_MEAN
_GEO_ES, _GEO_ES2 = A / _P_GEO, A * A * (2.0 - _P_GEO) / _P_GEO**2


def _build_geo(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    """Poisson arrivals and geometric lengths drawn here (no geometric length kind), replayed as a csv trace."""
    s_arr, s_len, s_sc = seed.spawn(3)
    t = np.cumsum(np.random.default_rng(s_arr).exponential(1.0 / lam, n))
    out = np.random.default_rng(s_len).geometric(_P_GEO, n)
    path = tmp / "geo.csv"
    np.savetxt(
        path,
        np.column_stack((t, np.ones(n), out)),
        fmt=("%.17g", "%d", "%d"),
        delimiter=",",
        header="arrival_s,prompt_tokens,output_tokens",
        comments="",
    )
    workload = {"arrival": {"kind": "trace", "path": str(path), "format": "csv"}}
    return _scenario("mm1-geo", s_sc, workload, _prompt_one_cost(A, 0.0))


def _build_md1(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    lengths = {"kind": "fixed", "prompt": 1, "output": MD1_TOKENS}
    return _scenario("md1", seed, _poisson(lam, n, lengths), _prompt_one_cost(A, MD1_C))


def _build_azure(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    return _scenario("mg1-azure", seed, _poisson(lam, n, _azure_lengths()), _per_iteration_cost(A))


def _build_azure_clip(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    sc = _scenario("mg1-azure-clip", seed, _poisson(lam, n, _azure_lengths()), _per_iteration_cost(A))
    sc["admission"] = {"max_tokens": CLIP_N_MAX}
    return sc


def _verify_clip(res: Any) -> None:
    out = res.requests["output_tokens"].to_numpy()
    clipped = res.summary["counts"].get("clipped", 0)
    if out.max() > CLIP_N_MAX or clipped == 0:
        raise RuntimeError(
            f"admission.max_tokens={CLIP_N_MAX} was not applied by the engine "
            f"(longest output {int(out.max())}, clipped count {clipped})"
        )


def _batch_scheduler(mode: str, b: int | None) -> dict[str, Any]:
    """The `static` scheduler in `mode` (batch size `b`, None = unlimited); fcfs stands in for dynamic/elastic.

    With 1-token requests every batch is one prefill iteration, so fcfs continuous batching with no
    limit is the same system as dynamic (and elastic) batching; fixed batching needs `static`.
    """
    from sim.core.registry import SCHEDULERS

    size = (1 << 30) if b is None else b
    if "static" in SCHEDULERS.kinds():
        return {"kind": "static", "mode": mode, "batch_size": size}
    if mode == "fixed":
        raise RuntimeError("fixed batching needs the `static` batch scheduler (policies/static.py)")
    return {"kind": "fcfs", "max_num_seqs": size, "max_num_batched_tokens": 1 << 30}


def _fixed_unavailable() -> str | None:
    from sim.core.registry import SCHEDULERS

    if "static" not in SCHEDULERS.kinds():
        return "needs the `static` batch scheduler (policies/static.py), which is not registered"
    return None


def _batch_builder(
    name: str, mode: str, b: int | None
) -> Callable[[float, np.random.SeedSequence, int, Path], dict[str, Any]]:
    """1-token prompts and outputs: a batch of b is one prefill iteration costing base τ0 + P·b, P = α."""

    def build(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
        lengths = {"kind": "fixed", "prompt": 1, "output": 1}
        cost = {"kind": "linear", "base_s": BATCH_TAU0, "per_prefill_token_s": BATCH_ALPHA, "per_decode_seq_s": 0.0}
        if mode == "fixed":
            n -= n % FIXED_B  # whole batches only: the flushed remainder would wait differently
        return _scenario(name, seed, _poisson(lam, n, lengths), cost, scheduler=_batch_scheduler(mode, b))

    return build


def _build_mgc(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    return _scenario(
        "mgc-jsq",
        seed,
        _poisson(lam, n, _azure_lengths()),
        _per_iteration_cost(A),
        instances=MGC_SERVERS,
        router="least_requests",
    )


def _azure_moments(n_max: float | None = None) -> tuple[float, float]:
    es, es2, _ = clipped_moments(azure_outputs(), A, 0.0, n_max)
    return es, es2


def _mgc_theory(lam: float) -> float:
    es, es2 = _azure_moments()
    return mgc_allen_cunneen(lam, es, es2 / es**2 - 1.0, MGC_SERVERS).wait_s


_FIXED_D = BATCH_TAU0 + BATCH_ALPHA * FIXED_B

SETUPS: dict[str, Setup] = {
    s.name: s
    for s in (
        Setup(
            "mm1-geo",
            f"M/M/1 analogue: geometric tokens (mean {GEO_MEAN}), exact M/G/1",
            f"fcfs max_num_seqs=1; prompt 1; P=a, D=a (a={A}); n ~ Geometric(1/{GEO_MEAN}) in a csv trace",
            lambda rho: rho / _GEO_ES,
            _build_geo,
            (Comparison("mm1-geo", "queue_delay_s", "exact", lambda lam: mg1(lam, _GEO_ES, _GEO_ES2).wait_s),),
        ),
        Setup(
            "md1",
            f"M/D/1: {MD1_TOKENS} tokens, S = c + a·n = {MD1_C + A * MD1_TOKENS:g} s",
            f"fcfs max_num_seqs=1; prompt 1; P=c+a, D=a (c={MD1_C}, a={A})",
            lambda rho: rho / (MD1_C + A * MD1_TOKENS),
            _build_md1,
            (Comparison("md1", "queue_delay_s", "exact", lambda lam: md1(lam, MD1_C + A * MD1_TOKENS).wait_s),),
        ),
        Setup(
            "mg1-azure",
            "M/G/1: output lengths of the Azure conversation trace",
            f"fcfs max_num_seqs=1; lengths sampled from {AZURE_TRACE}; base=a={A} per iteration (S = a·n)",
            lambda rho: rho / _azure_moments()[0],
            _build_azure,
            (
                Comparison(
                    "mg1-azure",
                    "queue_delay_s",
                    "exact",
                    lambda lam: mean_delay(lam, azure_outputs(), A, 0.0, None).wait_s,
                ),
            ),
        ),
        Setup(
            "mg1-azure-clip",
            f"M/G/1 with max-token clipping at n_max = {CLIP_N_MAX} (Azure conversation lengths)",
            f"as mg1-azure with admission.max_tokens={CLIP_N_MAX}; ρ is the clipped load",
            lambda rho: rho / _azure_moments(CLIP_N_MAX)[0],
            _build_azure_clip,
            (
                Comparison(
                    "mg1-azure-clip",
                    "queue_delay_s",
                    "exact",
                    lambda lam: mean_delay(lam, azure_outputs(), A, 0.0, CLIP_N_MAX).wait_s,
                ),
            ),
            verify=_verify_clip,
        ),
        Setup(
            "dyn-batch",
            f"dynamic batching, batch time τ0 + α·b (τ0={BATCH_TAU0}, α={BATCH_ALPHA}), unlimited batch; ρ = λα",
            "static mode=dynamic (fcfs if static is absent), 1-token prompt and output: a batch of b is one "
            "iteration of base τ0 + P·b, P = α",
            lambda rho: rho / BATCH_ALPHA,
            _batch_builder("dyn-batch", "dynamic", None),
            (
                Comparison(
                    "dyn-batch",
                    "queue_delay_s",
                    "exact",
                    lambda lam: dynamic_batching_mean_wait(lam, BATCH_ALPHA, BATCH_TAU0).wait_s,
                ),
                Comparison(
                    "dyn-batch-bound",
                    "e2el_s",
                    "bound",
                    lambda lam: dynamic_batching_bound(lam, BATCH_ALPHA, BATCH_TAU0),
                ),
            ),
        ),
        Setup(
            "dyn-batch-cap",
            f"dynamic batching capped at b_max = {DYN_B_MAX}; ρ = λ(α + τ0/b_max)",
            f"as dyn-batch with batch_size={DYN_B_MAX}",
            lambda rho: rho / (BATCH_ALPHA + BATCH_TAU0 / DYN_B_MAX),
            _batch_builder("dyn-batch-cap", "dynamic", DYN_B_MAX),
            (
                Comparison(
                    "dyn-batch-cap",
                    "queue_delay_s",
                    "exact",
                    lambda lam: dynamic_batching_mean_wait(lam, BATCH_ALPHA, BATCH_TAU0, DYN_B_MAX).wait_s,
                ),
            ),
        ),
        Setup(
            "elastic-batch",
            "elastic batching, batch time τ0 + α·b (equal to unlimited dynamic batching in this model); ρ = λα",
            "static mode=elastic (fcfs if static is absent), 1-token prompt and output",
            lambda rho: rho / BATCH_ALPHA,
            _batch_builder("elastic-batch", "elastic", None),
            (
                Comparison(
                    "elastic-batch",
                    "queue_delay_s",
                    "exact",
                    lambda lam: elastic_batching_mean_wait(lam, BATCH_ALPHA, BATCH_TAU0).wait_s,
                ),
            ),
        ),
        Setup(
            "fixed-batch",
            f"fixed batching, b = {FIXED_B}, batch time τ0 + α·b; ρ = λ(τ0 + αb)/b",
            f"static mode=fixed batch_size={FIXED_B}, 1-token prompt and output",
            lambda rho: rho * FIXED_B / _FIXED_D,
            _batch_builder("fixed-batch", "fixed", FIXED_B),
            (
                Comparison(
                    "fixed-batch",
                    "queue_delay_s",
                    "exact",
                    lambda lam: fixed_batching_mean_wait(lam, BATCH_ALPHA, BATCH_TAU0, FIXED_B).wait_s,
                ),
            ),
            unavailable=_fixed_unavailable,
        ),
        Setup(
            "mgc-jsq",
            f"{MGC_SERVERS} instances, least_requests router vs Allen–Cunneen M/G/{MGC_SERVERS} (Azure lengths)",
            f"{MGC_SERVERS} x fcfs max_num_seqs=1, least_requests router (join-shortest-queue, not a central "
            "queue); ρ per server",
            lambda rho: MGC_SERVERS * rho / _azure_moments()[0],
            _build_mgc,
            (Comparison("mgc-jsq", "queue_delay_s", "approx", _mgc_theory),),
        ),
    )
}

#: The setups whose formula is exact for the simulated system (the default test suite checks these).
EXACT_SETUPS = ("mm1-geo", "md1", "mg1-azure", "mg1-azure-clip")


def mm1_reference_gap() -> float:
    """Relative gap of the exact geometric-token wait to the M/M/1 wait at the same mean: −p/2."""
    lam = 0.5 / _GEO_ES
    return mg1(lam, _GEO_ES, _GEO_ES2).wait_s / mm1(lam, 1.0 / _GEO_ES).wait_s - 1.0


# -------------------------------------------------------------------------------------- replications
@dataclass(frozen=True)
class _Task:
    setup: str
    rho: float
    lam: float
    seed: np.random.SeedSequence
    requests: int
    warmup: float


def replicate(task: _Task) -> dict[str, float]:
    """Run one replication and return the post-warm-up mean of each compared metric (seconds)."""
    import sim

    setup = SETUPS[task.setup]
    with tempfile.TemporaryDirectory(prefix="servesim-check-") as tmp:
        res = sim.run(setup.build(task.lam, task.seed, task.requests, Path(tmp)))
    counts = res.summary["counts"]
    if counts["completed"] != counts["arrived"] or counts["preemptions"]:
        raise RuntimeError(f"{task.setup}: the check scenario must complete every request without preemption: {counts}")
    setup.verify(res)
    df = res.requests  # rows in arrival order
    keep = df.iloc[int(task.warmup * len(df)) :]
    return {c.metric: float(keep[c.metric].mean()) for c in setup.comparisons} | {"n": float(len(keep))}


# ------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class CheckRow:
    """Theory vs simulation for one comparison at one load.

    ``ci_low_s``/``ci_high_s`` is the per-row interval at the report's confidence (95%);
    ``test_low_s``/``test_high_s`` is the Bonferroni-widened interval the verdict uses, so that a
    correct simulator fails the whole report with probability at most 1 − confidence.
    """

    model: str
    rho: float
    theory_s: float
    sim_s: float
    ci_low_s: float
    ci_high_s: float
    test_low_s: float
    test_high_s: float
    kind: Kind
    replications: int
    requests: int  # per replication, before warm-up deletion

    @property
    def exact(self) -> bool:
        return self.kind == "exact"

    @property
    def rel_error(self) -> float:
        return (self.sim_s - self.theory_s) / self.theory_s

    @property
    def in_ci(self) -> bool:
        """Exact: theory inside the per-row CI; bound: the bound not below it."""
        return _holds(self.kind, self.theory_s, self.ci_low_s, self.ci_high_s)

    @property
    def passed(self) -> bool:
        """The verdict: as ``in_ci`` on the Bonferroni interval; approximations always pass."""
        return _holds(self.kind, self.theory_s, self.test_low_s, self.test_high_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rho": self.rho,
            "theory_s": self.theory_s,
            "sim_s": self.sim_s,
            "ci_low_s": self.ci_low_s,
            "ci_high_s": self.ci_high_s,
            "rel_error": self.rel_error,
            "exact": self.exact,
            "kind": self.kind,
            "in_ci": self.in_ci,
            "passed": self.passed,
        }


def _holds(kind: Kind, theory: float, lo: float, hi: float) -> bool:
    if kind == "exact":
        return lo <= theory <= hi
    if kind == "bound":
        return theory >= lo
    return True


@dataclass
class CheckReport:
    """All rows, the setups that could not run (and why), and the confidence levels used."""

    rows: list[CheckRow] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    confidence: float = 0.95
    row_confidence: float = 0.95  # the Bonferroni level of each asserted row's test interval

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)


def t_interval(means: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval over independent replication means."""
    x = np.asarray(means, dtype=float)
    if x.size < 2:
        raise ValueError("a confidence interval needs at least 2 replications")
    m = float(x.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2.0, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - half, m + half


def parse_rhos(text: str) -> list[float]:
    """'0.3,0.6,0.8' → [0.3, 0.6, 0.8]; each load must lie in (0, 1)."""
    try:
        rhos = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--rho must be comma-separated numbers, got {text!r}") from None
    if not rhos or any(not 0.0 < r < 1.0 for r in rhos):
        raise ValueError(f"--rho values must lie in (0, 1), got {text!r}")
    return rhos


def _seed(root: int, setup: str, rho: float) -> np.random.SeedSequence:
    """A stream per (setup, ρ), the same whichever other setups or loads are run."""
    return np.random.SeedSequence([root, zlib.crc32(setup.encode()), round(rho * 1_000_000)])


def run_checks(
    rhos: Sequence[float] = (0.3, 0.6, 0.8),
    *,
    replications: int | Mapping[float, int] = 10,
    requests: int | Mapping[float, int] = 20_000,
    models: Sequence[str] | None = None,
    seed: int = 0,
    warmup: float = 0.1,
    confidence: float = 0.95,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Simulate each setup at each load and compare with its formula.

    ``replications`` and ``requests`` (per replication) may be given per load as ``{ρ: value}``;
    ``warmup`` is the fraction of each replication's requests (in arrival order) deleted;
    ``workers`` processes run replications in parallel (default: CPU count; 1 = in this process).
    Results do not depend on ``workers``.
    """
    names = list(SETUPS) if models is None else list(models)
    unknown = [m for m in names if m not in SETUPS]
    if unknown:
        raise ValueError(f"unknown queueing check(s) {unknown}; known: {', '.join(SETUPS)}")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")

    def per_rho(v: int | Mapping[float, int], rho: float) -> int:
        return int(v[rho]) if isinstance(v, Mapping) else int(v)

    report = CheckReport(confidence=confidence)
    tasks: list[_Task] = []
    for name in names:
        setup = SETUPS[name]
        why = setup.unavailable()
        if why:
            report.unavailable[name] = why
            continue
        for rho in rhos:
            reps, n = per_rho(replications, rho), per_rho(requests, rho)
            if reps < 2 or n < 10:
                raise ValueError(f"need >= 2 replications and >= 10 requests each, got {reps} and {n}")
            lam = setup.lam(rho)
            for child in _seed(seed, name, rho).spawn(reps):
                tasks.append(_Task(name, rho, lam, child, n, warmup))
    results = _map(tasks, workers, progress)
    ran = [n for n in names if n not in report.unavailable]
    asserted = sum(c.kind != "approx" for n in ran for c in SETUPS[n].comparisons) * len(rhos)
    report.row_confidence = 1.0 - (1.0 - confidence) / max(asserted, 1)
    for name in ran:
        setup = SETUPS[name]
        for rho in rhos:
            mine = [r for t, r in zip(tasks, results, strict=True) if t.setup == name and t.rho == rho]
            lam = setup.lam(rho)
            for comp in setup.comparisons:
                means = [r[comp.metric] for r in mine]
                m, lo, hi = t_interval(means, confidence)
                _, tlo, thi = t_interval(means, report.row_confidence)
                report.rows.append(
                    CheckRow(
                        comp.label,
                        rho,
                        comp.theory(lam),
                        m,
                        lo,
                        hi,
                        tlo,
                        thi,
                        comp.kind,
                        len(mine),
                        per_rho(requests, rho),
                    )
                )
    return report


def _map(
    tasks: list[_Task], workers: int | None, progress: Callable[[int, int], None] | None
) -> list[dict[str, float]]:
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    total = len(tasks)
    if workers == 1:
        out = []
        for i, t in enumerate(tasks):
            out.append(replicate(t))
            if progress is not None:
                progress(i + 1, total)
        return out
    # big tasks first so the pool ends together; results go back to the task order
    order = sorted(range(total), key=lambda i: -tasks[i].requests / (1.0 - tasks[i].rho))
    res: list[dict[str, float] | None] = [None] * total
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for k, (i, r) in enumerate(zip(order, pool.map(replicate, [tasks[i] for i in order]), strict=True)):
            res[i] = r
            if progress is not None:
                progress(k + 1, total)
    return [r for r in res if r is not None]


# -------------------------------------------------------------------------------------------- output
def render_table(report: CheckReport) -> Any:
    """A rich Table of the report (theory vs simulation, CI, relative error, verdict)."""
    from rich.table import Table

    pct = round(report.confidence * 100)
    t = Table(title="queueing theory vs simulation (mean wait in queue unless noted)", title_justify="left")
    for col, just in (
        ("model", "left"),
        ("ρ", "right"),
        ("theory (s)", "right"),
        ("sim (s)", "right"),
        (f"{pct}% CI (s)", "right"),
        ("rel. error", "right"),
        ("kind", "left"),
        ("ok", "left"),
    ):
        t.add_column(col, justify=just, no_wrap=col in ("model", "ok"))  # type: ignore[arg-type]
    for r in report.rows:
        label = r.model + (" [sojourn]" if r.kind == "bound" else "")
        verdict = "[green]yes[/]" if r.in_ci else "[yellow]yes*[/]" if r.passed else "[bold red]NO[/]"
        if r.kind == "approx":
            verdict = "-"
        t.add_row(
            label,
            f"{r.rho:g}",
            f"{r.theory_s:.4g}",
            f"{r.sim_s:.4g}",
            f"{r.ci_low_s:.4g}–{r.ci_high_s:.4g}",
            f"{r.rel_error:+.2%}",
            r.kind,
            verdict,
        )
    notes = [
        "exact: theory must lie in the CI; bound: Inoue's bound on the mean sojourn must not lie below it; "
        f"approx: reported only (mgc-jsq: {MGC_SERVERS} instances behind join-shortest-queue vs Allen–Cunneen "
        f"M/G/{MGC_SERVERS}, a central queue)",
        f"verdict (exit status): each asserted row at {report.row_confidence:.2%} (Bonferroni), so a correct "
        f"simulator fails the report with probability <= {1 - report.confidence:.0%}; "
        f"yes* = outside the {pct}% CI, inside that interval",
        f"mm1-geo is exact M/G/1 with geometric tokens; its wait differs from the M/M/1 formula at the same "
        f"mean by {mm1_reference_gap():+.2%} (discrete vs exponential service)",
    ]
    notes += [f"{k}: unavailable — {v}" for k, v in report.unavailable.items()]
    t.caption = "\n".join(notes)
    t.caption_justify = "left"
    return t
