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
def busiest_active_experts(tokens: int, k: int, num_experts: int, ep: int) -> float:
    """Expected experts with at least one token on the EP rank that has the most of them: the weights the
    slowest GPU of a lockstep MoE layer streams. With few tokens a grouped expert GEMM is bound by the weight
    bytes of the experts it touches (each active expert's whole matrix is read however few tokens it gets), so
    the layer waits for the rank that touches the most experts, not for the mean: at one token with top-8 of
    256 experts over 8 ranks the mean rank touches 1 expert and the busiest 2.5 (E[max] of the ranks' counts).

    Each of a rank's E / ep experts is hit with probability p = 1 − (1 − k/E)^tokens (`active_experts`); a
    rank's count is taken as Binomial(E / ep, p) and the ranks as independent, so E[max] = Σ_x (1 − F(x)^ep).
    That ignores the weak negative correlations (a token's k experts are distinct; ranks share a token's
    choices); the Monte-Carlo test of the routing holds it within 3 %. ep = 1: every GPU holds (a shard of)
    every expert, and the count is `active_experts` of all E."""
    if tokens <= 0:
        return 0.0
    local = num_experts // ep
    p = 1.0 - (1.0 - k / num_experts) ** tokens
    if ep <= 1 or p >= 1.0:
        return local * p
    from scipy.stats import binom  # lazily: see `_exact_max`

    xs = np.arange(local + 1)
    return float(np.sum(1.0 - binom.cdf(xs, local, p) ** ep))
