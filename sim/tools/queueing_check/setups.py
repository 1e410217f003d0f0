"""The setups: each a check scenario that satisfies one formula's assumptions, and the comparisons it makes.

``mm1-geo`` (geometric tokens: an exact M/G/1, the discrete analogue of M/M/1 — the engine's
lattice-valued service cannot be exponential), ``md1``, ``mg1-azure`` (output lengths sampled from the
Azure 2023 conversation trace), ``mg1-azure-clip`` (the same, cut by ``admission.max_tokens``);
``dyn-batch``, ``dyn-batch-cap``, ``elastic-batch``, ``fixed-batch`` (the embedded-chain and Spitzer
results are exact; Inoue's bound is checked as a bound); ``mgc-jsq`` (c instances behind
``least_requests`` vs Allen–Cunneen M/G/c: an approximation of a different system, reported, never asserted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from queueing.batching import (
    dynamic_batching_bound,
    dynamic_batching_mean_wait,
    elastic_batching_mean_wait,
    fixed_batching_mean_wait,
)
from queueing.clipping import clipped_moments, mean_delay
from queueing.multi import mgc_allen_cunneen
from queueing.single import md1, mg1, mm1
from sim.tools.queueing_check.scenarios import (
    AZURE_TRACE,
    BATCH_ALPHA,
    BATCH_TAU0,
    CLIP_N_MAX,
    DYN_B_MAX,
    FIXED_B,
    GEO_MEAN,
    MD1_C,
    MD1_TOKENS,
    MGC_SERVERS,
    P_GEO,
    A,
    azure_outputs,
    batch_builder,
    build_azure,
    build_azure_clip,
    build_geo,
    build_md1,
    build_mgc,
    verify_clip,
)

Kind = Literal["exact", "bound", "approx"]


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
    verify: Callable[[Any], None] = lambda res: None  # checks on a finished run (e.g. clipping happened)


# mm1-geo: n ~ Geometric(p) on {1, 2, ...}, S = a·n: E[S] = a/p, E[S²] = a²(2 − p)/p². Exact M/G/1. The
# M/M/1 with the same mean has E[S²] = 2a²/p², so its wait is larger by the factor 2/(2 − p) (p/2 = 0.25%).
_GEO_ES, _GEO_ES2 = A / P_GEO, A * A * (2.0 - P_GEO) / P_GEO**2


def azure_moments(n_max: float | None = None) -> tuple[float, float]:
    es, es2, _ = clipped_moments(azure_outputs(), A, 0.0, n_max)
    return es, es2


def _mgc_theory(lam: float) -> float:
    es, es2 = azure_moments()
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
            build_geo,
            (Comparison("mm1-geo", "queue_delay_s", "exact", lambda lam: mg1(lam, _GEO_ES, _GEO_ES2).wait_s),),
        ),
        Setup(
            "md1",
            f"M/D/1: {MD1_TOKENS} tokens, S = c + a·n = {MD1_C + A * MD1_TOKENS:g} s",
            f"fcfs max_num_seqs=1; prompt 1; P=c+a, D=a (c={MD1_C}, a={A})",
            lambda rho: rho / (MD1_C + A * MD1_TOKENS),
            build_md1,
            (Comparison("md1", "queue_delay_s", "exact", lambda lam: md1(lam, MD1_C + A * MD1_TOKENS).wait_s),),
        ),
        Setup(
            "mg1-azure",
            "M/G/1: output lengths of the Azure conversation trace",
            f"fcfs max_num_seqs=1; lengths sampled from {AZURE_TRACE}; base=a={A} per iteration (S = a·n)",
            lambda rho: rho / azure_moments()[0],
            build_azure,
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
            lambda rho: rho / azure_moments(CLIP_N_MAX)[0],
            build_azure_clip,
            (
                Comparison(
                    "mg1-azure-clip",
                    "queue_delay_s",
                    "exact",
                    lambda lam: mean_delay(lam, azure_outputs(), A, 0.0, CLIP_N_MAX).wait_s,
                ),
            ),
            verify=verify_clip,
        ),
        Setup(
            "dyn-batch",
            f"dynamic batching, batch time τ0 + α·b (τ0={BATCH_TAU0}, α={BATCH_ALPHA}), unlimited batch; ρ = λα",
            "static mode=dynamic, 1-token prompt and output: a batch of b is one iteration of base τ0 + P·b, P = α",
            lambda rho: rho / BATCH_ALPHA,
            batch_builder("dyn-batch", "dynamic", None),
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
            batch_builder("dyn-batch-cap", "dynamic", DYN_B_MAX),
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
            "static mode=elastic, 1-token prompt and output",
            lambda rho: rho / BATCH_ALPHA,
            batch_builder("elastic-batch", "elastic", None),
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
            batch_builder("fixed-batch", "fixed", FIXED_B),
            (
                Comparison(
                    "fixed-batch",
                    "queue_delay_s",
                    "exact",
                    lambda lam: fixed_batching_mean_wait(lam, BATCH_ALPHA, BATCH_TAU0, FIXED_B).wait_s,
                ),
            ),
        ),
        Setup(
            "mgc-jsq",
            f"{MGC_SERVERS} instances, least_requests router vs Allen–Cunneen M/G/{MGC_SERVERS} (Azure lengths)",
            f"{MGC_SERVERS} x fcfs max_num_seqs=1, least_requests router (join-shortest-queue, not a central "
            "queue); ρ per server",
            lambda rho: MGC_SERVERS * rho / azure_moments()[0],
            build_mgc,
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
