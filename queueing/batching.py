"""Batch-service queues with batch time τ[b] = α·b + τ0 and Poisson arrivals at rate λ.

Three policies (Yang, Jiao & Xu, arXiv 2407.05347, §IV; Inoue, "Queueing analysis of GPU-based
inference servers with dynamic batching: a closed-form characterization", Performance Evaluation
2021):

* **dynamic** — when the server frees it starts a batch of everything waiting (at most ``b_max``);
  if nothing waits it idles, and the next arrival starts a batch of 1 at once;
* **fixed** — wait until exactly ``b`` requests have gathered, then serve them together;
* **elastic** — no intra-batch waiting: a batch starts whenever the server frees and takes all
  waiting requests. With batch time depending only on the batch *size* this is dynamic batching with
  no ``b_max`` (see :func:`elastic_batching_mean_wait`).

Times are seconds. ``wait_s`` is arrival → start of the request's own batch; ``sojourn_s`` adds
that batch's processing time (arrival → completion, the latency Inoue's bound refers to).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve
from scipy.special import gammainc
from scipy.stats import poisson

from queueing.errors import UnstableError, check_nonnegative, check_positive

__all__ = [
    "BatchQueueResult",
    "FixedBatchResult",
    "dynamic_batching_bound",
    "dynamic_batching_mean_wait",
    "elastic_batching_mean_wait",
    "fixed_batching_mean_wait",
]


@dataclass(frozen=True, eq=False, slots=True)
class BatchQueueResult:
    """Dynamic/elastic batching: mean wait and sojourn, and the stationary batch-size law."""

    wait_s: float
    sojourn_s: float
    mean_batch: float
    batch_m2: float
    batch_sizes: np.ndarray
    batch_probs: np.ndarray
    utilization: float


@dataclass(frozen=True, slots=True)
class FixedBatchResult:
    """Fixed batching: formation wait, wait of the full batch for the server, totals."""

    rho: float
    formation_s: float
    batch_wait_s: float
    wait_s: float
    sojourn_s: float


def _params(lam: float, alpha: float, tau0: float) -> tuple[float, float, float]:
    lam = check_positive("lam", lam)
    alpha = check_nonnegative("alpha", alpha)
    tau0 = check_nonnegative("tau0", tau0)
    if alpha + tau0 <= 0.0:
        raise ValueError("alpha + tau0 must be > 0 (a batch must take some time)")
    return lam, alpha, tau0


def dynamic_batching_bound(lam: float, alpha: float, tau0: float, b_max: int | None = None) -> float:
    """Inoue's closed-form upper bound on the mean latency (sojourn) under dynamic batching.

    Assumptions: Poisson(λ) arrivals, batch time α·b + τ0, unlimited batch size (``b_max=None``;
    a finite ``b_max`` is rejected: capping batches can only lengthen the wait, so the bound does
    not apply). Stable iff λα < 1.

    Formula: E[W] ≤ min(φ0, φ1) with
    φ0 = (α+τ0)/(2(1−λα))·(1 + 2λτ0 + (1−λτ0)/(1+λα)),
    φ1 = (3/2)·τ0/(1−λα) + (α/2)·(λα+2)/(1−λ²α²);  φ0 ≤ φ1 when λ ≤ 1/(α+τ0).

    Source: Inoue (2021), Theorem on the mean latency bound; quoted in Yang, Jiao & Xu (2024).
    """
    lam, alpha, tau0 = _params(lam, alpha, tau0)
    if b_max is not None:
        raise ValueError("Inoue's bound assumes unlimited batch size; pass b_max=None")
    la = lam * alpha
    if la >= 1.0:
        raise UnstableError(la, **{"lambda": lam, "alpha": alpha, "tau0": tau0})
    phi0 = (alpha + tau0) / (2.0 * (1.0 - la)) * (1.0 + 2.0 * lam * tau0 + (1.0 - lam * tau0) / (1.0 + la))
    phi1 = 1.5 * tau0 / (1.0 - la) + 0.5 * alpha * (la + 2.0) / (1.0 - la * la)
    return float(min(phi0, phi1))


def _solve_chain(
    lam: float, alpha: float, tau0: float, bmax: float, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stationary law of Q (number waiting at batch completions) truncated to 0..k."""
    q = np.arange(k + 1)
    b = np.minimum(np.maximum(q, 1), bmax).astype(np.int64)
    rem = q - np.minimum(q, b)
    rows, cols, vals = [], [], []
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(k + 1):
        bi = int(b[i])
        if bi not in cache:
            mu = lam * (alpha * bi + tau0)
            hi = int(math.ceil(mu + 12.0 * math.sqrt(mu) + 30.0))  # tail mass < 1e-20
            a = np.arange(hi + 1)
            cache[bi] = (a, poisson.pmf(a, mu))
        a, pa = cache[bi]
        nxt = rem[i] + a
        ok = nxt <= k
        p = pa[ok]
        rows.append(np.full(p.size, i))
        cols.append(nxt[ok])
        vals.append(p / p.sum())  # drop the (negligible) mass beyond the truncation
    pmat = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(k + 1, k + 1)
    )
    # π(P − I) = 0: fix π_0 = 1 and solve the other k balance equations (keeps the band structure)
    m = (pmat.T - sparse.identity(k + 1, format="csr")).tocsc()
    rest = spsolve(m[1:, 1:], -m[1:, 0].toarray().ravel())
    pi = np.maximum(np.concatenate(([1.0], np.atleast_1d(rest))), 0.0)
    return pi / pi.sum(), b, rem


def dynamic_batching_mean_wait(
    lam: float,
    alpha: float,
    tau0: float,
    b_max: int | None = None,
    *,
    tol: float = 1e-12,
    max_states: int = 200_000,
) -> BatchQueueResult:
    """Mean wait and latency under dynamic batching, from the embedded Markov chain (numerically exact).

    Assumptions: Poisson(λ) arrivals; one server; when it frees it takes all waiting requests up to
    ``b_max`` (``None`` = unlimited); an arrival to an idle server starts a batch of 1 at once; a
    batch of b takes τ[b] = α·b + τ0 (deterministic). Stable iff λ·τ[b_max]/b_max < 1 (λα < 1
    when unlimited).

    Method: Q = number waiting at a batch completion is a Markov chain: the next batch has
    B = min(max(Q, 1), b_max), leaves R = Q − min(Q, B) behind, and Q' = R + Poisson(λτ[B]). The
    state space is truncated at K (doubled until the stationary mass in the top tenth is < ``tol``)
    and π solved as a sparse linear system. Per batch cycle the waiting-customer area is
    R·τ[B] + λτ[B]²/2 (idle periods add none), and a cycle serves B customers, so

        E[Wq] = E[R·τ[B] + λτ[B]²/2] / E[B],    E[W] = E[Wq] + E[B·τ[B]]/E[B].

    With b_max = ∞ (R ≡ 0) this is Inoue's E[W] = (E[B²] − E[B])/(2λE[B]) + E[H], since the batch
    after one of length τ has Poisson(λτ) members, each arrived uniformly during it; H is the
    processing time of the customer's own batch (size-biased, E[H] = E[Bτ[B]]/E[B]).
    """
    lam, alpha, tau0 = _params(lam, alpha, tau0)
    if b_max is not None and (int(b_max) != b_max or b_max < 1):
        raise ValueError(f"b_max must be a positive integer or None, got {b_max!r}")
    bmax = math.inf if b_max is None else int(b_max)
    per_req = alpha + (0.0 if math.isinf(bmax) else tau0 / bmax)
    load = lam * per_req
    if load >= 1.0:
        raise UnstableError(load, **{"lambda": lam, "alpha": alpha, "tau0": tau0, "b_max": bmax})
    # Initial truncation from a crude mean of Q (batch sizes ~ λτ0/(1−λα), or an M/G/1-ish queue).
    m = lam * (alpha + tau0) / (1.0 - load)
    k = int(min(max(64, 4 * m + 40 * math.sqrt(m + 1.0) + 64), max_states))
    while True:
        pi, b, rem = _solve_chain(lam, alpha, tau0, bmax, k)
        top = pi[int(0.9 * k) :].sum()
        if top < tol:
            break
        if k >= max_states:
            raise RuntimeError(f"dynamic batching chain needs more than {max_states} states (load {load:.4g})")
        k = min(2 * k, max_states)
    tau = alpha * b + tau0
    eb = float(pi @ b)
    eb2 = float(pi @ (b * b))
    wait = float(pi @ (rem * tau + 0.5 * lam * tau * tau)) / eb
    own = float(pi @ (b * tau)) / eb
    busy = float(pi @ tau)
    util = busy / (busy + pi[0] / lam)
    sizes = np.arange(1, int(b.max()) + 1)
    probs = np.bincount(b, weights=pi, minlength=sizes.size + 1)[1:]
    return BatchQueueResult(wait, wait + own, eb, eb2, sizes, probs, util)


def elastic_batching_mean_wait(lam: float, alpha: float, tau0: float) -> BatchQueueResult:
    """Elastic batching (no intra-batch waiting) in the τ[b] = α·b + τ0 model.

    In the paper, elastic batching removes *intra-batch* waiting: a request does not wait for the
    longest output in its batch, and a free server starts a new batch with everything waiting. In a
    model whose batch time depends only on the batch size (no per-request lengths) there is no
    intra-batch waiting to remove, and "start when free, take everything" is exactly dynamic
    batching with unlimited batch size. So this returns
    ``dynamic_batching_mean_wait(lam, alpha, tau0, b_max=None)`` — exact within this model (a
    derivation, not a bound). Length-dependent batch times (PAPERS.md's H[b] with E[L]) are out of
    scope here; use the simulator. Stable iff λα < 1.
    """
    return dynamic_batching_mean_wait(lam, alpha, tau0, b_max=None)


def _spitzer_ekd1(lam: float, k: int, d: float, *, rel_tol: float = 1e-13, max_terms: int = 50_000_000) -> float:
    """Mean wait in queue of an E_k/D/1 queue (Erlang-k interarrivals of rate λ each phase)."""
    total, n0, chunk = 0.0, 1, 4096
    while n0 <= max_terms:
        n = np.arange(n0, n0 + chunk, dtype=float)
        x = n * d
        shape = n * k
        # E[(x - G)^+] for G ~ Gamma(shape, rate λ): x·F_shape(λx) − (shape/λ)·F_{shape+1}(λx)
        terms = (x * gammainc(shape, lam * x) - shape / lam * gammainc(shape + 1.0, lam * x)) / n
        terms = np.maximum(terms, 0.0)
        total += float(terms.sum())
        last, prev = float(terms[-1]), float(terms[-2])
        if last == 0.0:
            return total
        ratio = last / prev if prev > 0.0 else 1.0
        # terms decay geometrically in n: the tail is about last·r/(1−r)
        if ratio < 1.0 and last * ratio / (1.0 - ratio) <= rel_tol * total:
            return total
        n0 += chunk
        chunk = min(chunk * 2, 1 << 20)
    raise RuntimeError("Spitzer series for the fixed-batching queue did not converge")


def fixed_batching_mean_wait(lam: float, alpha: float, tau0: float, b: int) -> FixedBatchResult:
    """Exact mean wait under fixed batching: wait for exactly ``b`` requests, then serve them.

    Assumptions: Poisson(λ) arrivals; a batch is complete when its b-th request arrives; complete
    batches queue FCFS for one server; a batch takes D = τ0 + α·b. Stable iff ρ = λD/b < 1.

    Formula: a request in position i of its batch waits for b − i more arrivals, mean over
    positions (b − 1)/(2λ) (formation). Complete batches arrive as an Erlang-b renewal process of
    rate λ/b, so the batch queue is E_b/D/1; its mean wait comes from Spitzer's identity
    E[Wq] = Σ_{n≥1} (1/n)·E[(nD − G_n)⁺], G_n ~ Gamma(n·b, rate λ) the time of n·b arrivals, with
    E[(x − G)⁺] = x·P(G ≤ x) − (nb/λ)·P(Gamma(nb+1, λ) ≤ x) (series summed to relative 1e-13).

    E[wait to batch start] = (b − 1)/(2λ) + E[Wq];  E[sojourn] = that + D.
    Source: Spitzer (1956); Kleinrock vol. 2 (1976) §1.9; the batching model of Yang, Jiao & Xu (2024).
    """
    lam, alpha, tau0 = _params(lam, alpha, tau0)
    if int(b) != b or b < 1:
        raise ValueError(f"b must be a positive integer, got {b!r}")
    b = int(b)
    d = tau0 + alpha * b
    rho = lam * d / b
    if rho >= 1.0:
        raise UnstableError(rho, **{"lambda": lam, "alpha": alpha, "tau0": tau0, "b": b})
    formation = (b - 1) / (2.0 * lam)
    wq = _spitzer_ekd1(lam, b, d)
    return FixedBatchResult(rho, formation, wq, formation + wq, formation + wq + d)
