"""The cost-model floor F: a lower bound on the duration of any iteration with m tokens.

F(m): the iteration breakdown (`CostModel.breakdown`) of a prefill-only batch of m tokens and of a
decode-only batch of m sequences at zero context, with the attention and LM-head terms (non-negative)
dropped, whichever is smaller. *Assumption*, true of the linear, roofline and table kinds by construction
(their remaining terms depend only on the iteration's token count, or for `linear` are linear in prefill
and decode tokens) and checked on random batches in tests/test_planner.py: **every iteration with m tokens
costs at least F(m)**. From it, over the m an iteration can hold (<= M, from the scheduler):
κ = min F(m)/m, F_min = min F(m), c_d = min over batches b <= max_num_seqs of min_{m>=b} F(m)/b.
No interpolation, slack or steady-state argument is involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.config.scenario import Scenario
from sim.core.registry import SCHEDULERS
from sim.costmodel.models import CostModel, decode_coeffs

DROP = ("attn_prefill", "attn_decode", "lm_head")  # breakdown terms left out of the floor F (all >= 0)
TOL = 1e-9  # relative float tolerance, always in the direction that weakens a bound


def _dense(parts: dict[str, float]) -> float:
    return float(sum(v for k, v in parts.items() if k not in DROP))


_FLOOR_CACHE: dict[tuple[str, ...], np.ndarray] = {}


def _floor_values(cm: CostModel, lo: int, hi: int) -> np.ndarray:
    """F[m] for lo <= m < hi."""
    return np.array(
        [min(_dense(cm.breakdown([(m, 0)], 0, 0)), _dense(cm.breakdown([], m, 0))) for m in range(lo, hi)],
        dtype=np.float64,
    )


def floor_curve(cm: CostModel, key: tuple[str, ...], m_max: int) -> np.ndarray:
    """F[m] for m = 0..m_max (F[0] = inf); cached per cost model `key` and extended on demand."""
    have = _FLOOR_CACHE.get(key)
    if have is not None and len(have) > m_max:
        return have[: m_max + 1]
    start = 1 if have is None else len(have)
    full = np.concatenate(([math.inf] if have is None else have, _floor_values(cm, start, m_max + 1)))
    _FLOOR_CACHE[key] = full
    return full


@dataclass(frozen=True)
class FloorJob:
    """A floor curve to compute ahead: the scenario of one instance (plain data, for a worker) and how far."""

    scenario: dict[str, Any]
    base_dir: str
    m_max: int


def floor_chunk(job: FloorJob, lo: int, hi: int) -> np.ndarray:
    """F[m] for lo <= m < hi of the job's cost model — a worker's share of a curve (the same arithmetic as in
    this process, so the curve is bit-identical however it is split)."""
    from pathlib import Path

    from sim.config.scenario import load_scenario
    from sim.core.engine import build_cost_model

    sc = load_scenario(job.scenario)
    sc._base_dir = Path(job.base_dir)
    return _floor_values(build_cost_model(sc), lo, hi)


def warm(jobs: dict[tuple[str, ...], FloorJob], run_all: Any, pieces: int) -> None:
    """Compute the missing parts of the `jobs` curves with `run_all(fn, [args, ...]) -> [result, ...]` (the
    search's workers), cut into about `pieces` equal chunks in all, and cache them as `floor_curve` would."""
    todo = []
    for key, job in jobs.items():
        have = _FLOOR_CACHE.get(key)
        start = 1 if have is None else len(have)
        if start <= job.m_max:
            todo.append((key, job, start))
    total = sum(job.m_max + 1 - start for _, job, start in todo)
    if not todo:
        return
    step = max(256, -(-total // max(1, pieces)))
    args = [
        (job, lo, min(lo + step, job.m_max + 1)) for _, job, start in todo for lo in range(start, job.m_max + 1, step)
    ]
    parts = iter(run_all(floor_chunk, args))
    for key, job, start in todo:
        n = len(range(start, job.m_max + 1, step))
        have = _FLOOR_CACHE.get(key)
        _FLOOR_CACHE[key] = np.concatenate(([math.inf] if have is None else have, *[next(parts) for _ in range(n)]))


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


def cost_key(sc: Scenario) -> tuple[str, ...]:
    return (
        sc.model_spec.model_dump_json(),
        sc.gpu_spec.model_dump_json(),
        str(sc.cluster.tp),
        sc.cost_model.model_dump_json(),
        str(sc.base_dir),
    )


def iteration_tokens(sched: dict[str, Any], longest: int, max_seqs: int) -> int:
    """Most tokens one iteration can hold (M): from the scheduler's budget, batch and the longest request."""
    caps = SCHEDULERS.caps(sched["kind"])  # what the scheduler declares about its iterations
    budgets = [int(v) for k, v in sched.items() if k in ("token_budget", "max_num_batched_tokens") and v is not None]
    if caps.prefill_chunk:  # every decode (<= max_num_seqs), then chunks within what is left of the budget
        return max([max_seqs, *budgets])
    if caps.whole_prompts:  # prompts up to the budget, or one longer prompt alone (a recompute: prompt + output)
        return max([max_seqs, longest, *budgets])
    return max([max_seqs, *budgets]) + longest  # other schedulers: a generous superset
