"""Mixture-of-experts layer pricing: routed experts as grouped GEMMs on the busiest GPU, shared experts,
and the load imbalance expert parallelism pays because a step waits for its most loaded GPU.

Routing is taken as uniform over experts (each token's `k` choices independent): that is the balanced
case learned routers are trained towards, so the imbalance here is the irreducible statistical part;
real routers add skew on top (a `moe_imbalance` override in the cost-model config covers measured skew).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# Up to this many balls the multinomial maximum is computed exactly; beyond, counts are near-Gaussian and
# the independent-bins formula is within a per cent (see the Monte-Carlo test).
EXACT_MAX_BALLS = 256

# vLLM's fused_moe beyond what `one_launch` and `_elementwise` price, per MoE layer per step (`serving_engine.
# moe_grouped_gemm: fused_moe`). `fused_experts_impl` (vllm/model_executor/layers/fused_moe/fused_moe.py) launches,
# per chunk: `moe_kernel_quantize_input` (activations to the GEMM's dtype), `moe_align_block_size`, `fused_moe_kernel`
# (gate-up), `silu_and_mul`, `moe_kernel_quantize_input` again, `fused_moe_kernel` (down), `moe_sum`; top-k
# (`fused_topk`) runs before it. `one_launch` prices the two GEMM launches (the grouped curve) and `_elementwise` the
# top-k, the alignment, the activation and the sum, each at its launch floor. Left: the two quantisations, which
# launch only when activations are quantised (fp8_w8a8 / int8_w8a8; with bf16 activations they return the input).
# Each is an element-wise kernel over a few KB at decode batches, priced at the GPU's element-wise launch floor
# (`_kfloor["mlp_act"]`, the fastest measured activation kernel in ../shared/data/gpu-profiles: H100 1 us, A100 2 us).
# Padding tiles (num_experts x (BLOCK_SIZE_M - 1) rows that exit at once) are not priced: below BLOCK_SIZE_M tokens
# `invoke_fused_moe_kernel` caps EM at tokens x top_k x BLOCK_SIZE_M (no padding grid), and no cited per-block cost
# exists for the rest. vllm PR #24700's H100 timings are a check only (benchmarks/moe_vllm_kernel_check.py): this
# term is 2 us there against an 18-46 us gap, so no preset uses `fused_moe` (COVERAGE.md, branch s12-tpot2).
FUSED_MOE_QUANT_LAUNCHES = 2


def fixed_part(grouped: str, floors: dict[str, float], quantised_activations: bool) -> float:
    """Seconds a MoE layer's grouped-GEMM call costs per step beyond its GEMMs and the memory-bound kernels
    `_elementwise` prices: vLLM fused_moe's activation-quantisation launches, at the GPU's element-wise floor."""
    if grouped != "fused_moe" or not quantised_activations:
        return 0.0
    return FUSED_MOE_QUANT_LAUNCHES * floors.get("mlp_act", 0.0)


def _exact_max(balls: int, bins: int) -> float:
    """E[max] of a uniform multinomial, exactly: by Poissonisation, P(max <= x) is the coefficient of s^N in
    (Σ_{j<=x} pois(j; N/B) s^j)^B divided by pois(N; N), all terms probabilities (no overflow)."""
    from scipy.stats import poisson  # scipy.stats takes ~1 s to import: only MoE layouts pay it

    lam = balls / bins
    j = np.arange(balls + 1)
    pmf = poisson.pmf(j, lam)
    norm = poisson.pmf(balls, balls)
    expected, x = 0.0, 0
    while x < balls:
        poly = np.where(j <= x, pmf, 0.0)
        acc = np.array([1.0])
        base, e = poly, bins
        while e:  # truncated polynomial power by squaring
            if e & 1:
                acc = np.convolve(acc, base)[: balls + 1]
            e >>= 1
            if e:
                base = np.convolve(base, base)[: balls + 1]
        cdf = acc[balls] / norm if len(acc) > balls else 0.0
        expected += 1.0 - min(1.0, cdf)
        if cdf > 1.0 - 1e-9:
            break
        x += 1
    return expected


@lru_cache(maxsize=4096)
def expected_max_load(balls: int, bins: int) -> float:
    """E[max over `bins` of the counts] when `balls` land independently and uniformly in `bins` bins.

    Exact (`_exact_max`) up to EXACT_MAX_BALLS; beyond, Poissonised order statistics with the bins taken as
    independent: E[max] = Σ_x (1 − F(x)^bins), F the Binomial(balls, 1/bins) CDF."""
    if bins <= 1 or balls <= 0:
        return float(max(balls, 0))
    if balls <= EXACT_MAX_BALLS:
        return _exact_max(balls, bins)
    p = 1.0 / bins
    mean = balls * p
    sd = math.sqrt(balls * p * (1 - p))
    lo = max(0, int(mean - 12 * sd) - 1)
    hi = min(balls, int(mean + 12 * sd) + 2)
    xs = np.arange(lo, hi + 1)
    from scipy.stats import binom

    cdf = binom.cdf(xs, balls, p)
    return float(lo + np.sum(1.0 - cdf**bins))


def imbalance(tokens: int, k: int, ep: int) -> float:
    """Busiest EP rank's share of a layer's token-expert pairs relative to the mean (≥ 1)."""
    if ep <= 1 or tokens <= 0:
        return 1.0
    n = tokens * k
    return expected_max_load(n, ep) / (n / ep)


def active_experts(tokens: float, k: int, num_experts: int, local: float) -> float:
    """Expected experts among `local` ones that receive at least one of `tokens` tokens (each picks k of E):
    the experts whose weights a decode step must read, on an average GPU."""
    if tokens <= 0:
        return 0.0
    return local * (1.0 - (1.0 - k / num_experts) ** tokens)


@lru_cache(maxsize=4096)
def busiest_active_experts(
    tokens: int, k: int, num_experts: int, ep: int, groups: int = 1, group_topk: int = 1
) -> float:
    """Expected experts with at least one token on the EP rank that has the most of them: the weights the
    slowest GPU of a lockstep MoE layer streams. With few tokens a grouped expert GEMM is bound by the weight
    bytes of the experts it touches (each active expert's whole matrix is read however few tokens it gets), so
    the layer waits for the rank that touches the most experts, not for the mean: at one token with top-8 of
    256 experts over 8 ranks the mean rank touches 1 expert and the busiest 2.5 (E[max] of the ranks' counts).

    Each of a rank's E / ep experts is hit with probability p = 1 − (1 − k/E)^tokens (`active_experts`); a
    rank's count is taken as Binomial(E / ep, p) and the ranks as independent, so E[max] = Σ_x (1 − F(x)^ep).
    That ignores the weak negative correlations (a token's k experts are distinct; ranks share a token's
    choices); the Monte-Carlo test of the routing holds it within 3 %. ep = 1: every GPU holds (a shard of)
    every expert, and the count is `active_experts` of all E.

    Group-limited routing (`groups` > 1: DeepSeek-V3/R1's n_group 8, topk_group 4) keeps each expert's chance the
    same but bunches a token's k experts onto the ranks of its `group_topk` groups: at EP 8 one token's 8 experts
    fall on 4 ranks, not up to 8, and the busiest rank touches more (`_grouped_count_pmf`)."""
    if tokens <= 0:
        return 0.0
    local = num_experts // ep
    p = 1.0 - (1.0 - k / num_experts) ** tokens
    if ep <= 1 or p >= 1.0:
        return local * p
    if groups > 1 and group_topk < groups and (ep % groups == 0 or groups % ep == 0):
        cdf = np.cumsum(_grouped_count_pmf(tokens, k, num_experts, ep, groups, group_topk))
        return float(np.sum(1.0 - np.clip(cdf[:-1], 0.0, 1.0) ** ep))
    from scipy.stats import binom  # lazily: see `_exact_max`

    xs = np.arange(local + 1)
    return float(np.sum(1.0 - binom.cdf(xs, local, p) ** ep))


def _grouped_count_pmf(tokens: int, k: int, num_experts: int, ep: int, groups: int, group_topk: int) -> np.ndarray:
    """Distribution of one EP rank's distinct active experts after `tokens` tokens under group-limited routing,
    each token choosing `group_topk` of `groups` groups uniformly, then k distinct experts uniformly among
    those groups' experts (the balanced case, as the module docstring takes routing): a Markov chain over the
    rank's count (`_grouped_step`). The ranks are then taken as independent, as in `busiest_active_experts`;
    that misses that exactly `group_topk` groups are hit per token, so E[max] stays low at a few tokens: against
    a routing Monte Carlo (DeepSeek 256 / top-8 / 8 groups / top-4 groups) -9 % at one token on EP 8 (uniform
    routing: -27 %), -4.5 % at 4 tokens (-16 %), -2 % at 16 (-7 %); EP 4 and 16 alike (tests)."""
    dist = np.zeros(num_experts // ep + 1)
    dist[0] = 1.0
    return dist @ np.linalg.matrix_power(_grouped_step(k, num_experts, ep, groups, group_topk), tokens)


@lru_cache(maxsize=64)
def _grouped_step(k: int, num_experts: int, ep: int, groups: int, group_topk: int) -> np.ndarray:
    """One token's transition of a rank's distinct-expert count: a hypergeometric number j of the rank's experts
    chosen, of which a hypergeometric number are new. Exact when each rank's experts lie in one group (ep a
    multiple of `groups`); with several groups per rank (`groups` a multiple of ep) the j experts are taken as
    uniform over the rank's experts, which they are only within the chosen groups."""
    from scipy.stats import hypergeom  # lazily: see `_exact_max`

    local, per = num_experts // ep, num_experts // groups
    pool = group_topk * per  # the experts a token chooses among
    js = np.arange(local + 1)
    if ep % groups == 0:  # the rank's group is chosen w.p. group_topk / groups; then j of its experts
        pj = group_topk / groups * hypergeom.pmf(js, pool, local, k)
        pj[0] += 1.0 - group_topk / groups
    else:  # m of the rank's groups chosen, then j of the m * per experts they hold
        gpr = groups // ep
        pj = hypergeom.pmf(0, groups, gpr, group_topk) * (js == 0)
        for m in range(1, gpr + 1):
            pj = pj + hypergeom.pmf(m, groups, gpr, group_topk) * hypergeom.pmf(js, pool, m * per, k)
    step = np.zeros((local + 1, local + 1))
    for c in range(local + 1):
        for j in np.nonzero(pj > 0)[0]:
            new = np.arange(0, min(int(j), local - c) + 1)
            step[c, c + new] += pj[j] * hypergeom.pmf(new, local, local - c, int(j))
    return step
