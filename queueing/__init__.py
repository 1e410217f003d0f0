"""Closed-form queueing results for LLM serving (numpy/scipy only; no SimPy, no ``sim`` imports).

What is here, by file:

* ``single``   — M/M/1, M/D/1, M/G/1 (Pollaczek–Khinchine), M/G/1 from a service-time sample;
* ``clipping`` — M/G/1 with max-token clipping, S = c + a·min(N, n_max) (Yang, Jiao & Xu 2024):
  clipped moments, mean delay, the n_max that balances delay against clipped answers, and the
  mean delay with impatient users;
* ``batching`` — batch-service queues with batch time α·b + τ0: dynamic batching (embedded Markov
  chain, exact), Inoue's (2021) closed-form bound, fixed batching (exact, E_b/D/1 via Spitzer),
  elastic batching;
* ``multi``    — Erlang C, M/M/c, Allen–Cunneen M/G/c and G/G/c, Kingman G/G/1;
* ``errors``   — :class:`UnstableError` (a ``ValueError``) for ρ ≥ 1.

Units: seconds and requests per second. Every function states its assumptions, formula and source
in its docstring; results are floats or small frozen dataclasses / named tuples.
"""

from queueing.batching import (
    BatchQueueResult,
    FixedBatchResult,
    dynamic_batching_bound,
    dynamic_batching_mean_wait,
    elastic_batching_mean_wait,
    fixed_batching_mean_wait,
)
from queueing.clipping import (
    DEFAULT_CLIP_PENALTY_S,
    ClipMoments,
    ClippedQueueResult,
    OptimalClip,
    TokenPmf,
    clipped_moments,
    impatient_wait,
    mean_delay,
    optimal_n_max,
    token_pmf,
)
from queueing.errors import UnstableError
from queueing.multi import erlang_c, ggc_allen_cunneen, kingman_gg1, mgc_allen_cunneen, mmc
from queueing.single import QueueResult, md1, mg1, mg1_from_sample, mm1

__all__ = [
    "DEFAULT_CLIP_PENALTY_S",
    "BatchQueueResult",
    "ClipMoments",
    "ClippedQueueResult",
    "FixedBatchResult",
    "OptimalClip",
    "QueueResult",
    "TokenPmf",
    "UnstableError",
    "clipped_moments",
    "dynamic_batching_bound",
    "dynamic_batching_mean_wait",
    "elastic_batching_mean_wait",
    "erlang_c",
    "fixed_batching_mean_wait",
    "ggc_allen_cunneen",
    "impatient_wait",
    "kingman_gg1",
    "md1",
    "mean_delay",
    "mg1",
    "mg1_from_sample",
    "mgc_allen_cunneen",
    "mm1",
    "mmc",
    "optimal_n_max",
    "token_pmf",
]
