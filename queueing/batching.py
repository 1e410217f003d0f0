"""Batch-service queues with batch time τ[b] = α·b + τ0 and Poisson arrivals at rate λ.

Three policies (Yang, Jiao & Xu, arXiv 2407.05347, 2024; Inoue, "Queueing analysis of GPU-based
inference servers with dynamic batching: a closed-form characterization", Performance Evaluation 2021):

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

    Source: Inoue (2021), the closed-form latency bound; quoted in Yang, Jiao & Xu (2024).
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


_MAX_NNZ = 5_000_000  # largest transition matrix the chain solver builds (a few hundred MB with LU fill)


def _poisson_row(mu: float) -> tuple[np.ndarray, np.ndarray]:
    """Support and pmf of Poisson(mu), cut where the mass outside is < 1e-20."""
    spread = 10.0 * math.sqrt(mu) + 25.0
    a = np.arange(max(0, int(mu - spread)), math.ceil(mu + spread) + 1)
    return a, poisson.pmf(a, mu)


def _chain_nnz(lam: float, alpha: float, tau0: float, bmax: float, k: int) -> float:
    b = np.minimum(np.maximum(np.arange(k + 1), 1), bmax)
    return float(np.sum(20.0 * np.sqrt(lam * (alpha * b + tau0)) + 51.0))


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
            cache[bi] = _poisson_row(lam * (alpha * bi + tau0))
        a, pa = cache[bi]
        nxt = rem[i] + a
        ok = nxt <= k
        p = pa[ok]
        rows.append(np.full(p.size, i))
        cols.append(nxt[ok])
        vals.append(p / p.sum())  # drop the (negligible) mass beyond the truncation
    pmat = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(k + 1, k + 1))
    # π(P − I) = 0: fix π_0 = 1 and solve the other k balance equations (keeps the band structure)
    m = (pmat.T - sparse.identity(k + 1, format="csr")).tocsc()
    rest = spsolve(m[1:, 1:], -m[1:, 0].toarray().ravel())
    pi = np.maximum(np.concatenate(([1.0], np.atleast_1d(rest))), 0.0)
    return pi / pi.sum(), b, rem


def _unbounded_moments(lam: float, alpha: float, tau0: float) -> tuple[float, float, float]:
    """(π0, E[B], E[B²]) for dynamic batching with unlimited batches, from the pgf (no truncation).

    With Q' ~ Poisson(λ(αQ̃ + τ0)), Q̃ = max(Q, 1), the pgf satisfies
    G(z) = g(z)·[G(h(z)) + π0(h(z) − 1)], g(z) = e^{λτ0(z−1)}, h(z) = e^{λα(z−1)}. Iterating from
    z0 = 0 (z_{j+1} = h(z_j) → 1) gives π0 = Πg(z_i) / (1 − Σ_j (z_{j+1} − 1)·Π_{i≤j} g(z_i)).
    The first two moments then follow from E[Q'] and E[Q'²] at stationarity.
    """
    la, lt = lam * alpha, lam * tau0
    # Work with y_j = 1 − z_j (→ 0 geometrically, factor ≈ λα) to keep precision near z = 1;
    # once y is tiny the rest of both series is geometric and is added in closed form.
    y, log_prod, s = 1.0, 0.0, 0.0
    while y > 1e-10 * (1.0 - la):
        log_prod -= lt * y
        y = -math.expm1(-la * y)
        s -= y * math.exp(log_prod)
    s -= math.exp(log_prod) * y * la / (1.0 - la)
    log_prod -= lt * y / (1.0 - la)
    pi0 = math.exp(log_prod) / (1.0 - s)
    m1 = (lt + la * pi0) / (1.0 - la)
    m2 = (m1 + la * la * pi0 + 2.0 * la * lt * (m1 + pi0) + lt * lt) / (1.0 - la * la)
    return pi0, m1 + pi0, m2 + pi0


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
    processing time of the customer's own batch (size-biased, E[H] = E[Bτ[B]]/E[B]). In that case
    E[B], E[B²] and P(idle) also have an exact pgf solution (no truncation); it is used when the
    chain would be too large (λα near 1), and then ``batch_sizes``/``batch_probs`` are empty.
    """
    lam, alpha, tau0 = _params(lam, alpha, tau0)
    if b_max is not None and (int(b_max) != b_max or b_max < 1):
        raise ValueError(f"b_max must be a positive integer or None, got {b_max!r}")
    bmax = math.inf if b_max is None else int(b_max)
    per_req = alpha + (0.0 if math.isinf(bmax) else tau0 / bmax)
    load = lam * per_req
    if load >= 1.0:
        raise UnstableError(load, **{"lambda": lam, "alpha": alpha, "tau0": tau0, "b_max": bmax})
    if b_max is None:  # size the truncation from the exact moments
        _, eb, eb2 = _unbounded_moments(lam, alpha, tau0)
        # near λα = 1 the law of B is roughly exponential: its tail needs ~30 means
        k = int(30.0 * eb + 15.0 * math.sqrt(max(eb2 - eb * eb, 0.0)) + 64)
    else:  # a crude mean of Q (an M/G/1-like queue of batches) to start the doubling
        m = lam * (alpha + tau0) / (1.0 - load)
        k = int(max(64, 4 * m + 40 * math.sqrt(m + 1.0) + 64))
    k = min(k, max_states)
    while True:
        if _chain_nnz(lam, alpha, tau0, bmax, k) > _MAX_NNZ:
            if b_max is None:
                return _unbounded_result(lam, alpha, tau0)
            raise RuntimeError(f"dynamic batching chain too large to solve (load {load:.6g} too close to 1)")
        pi, b, rem = _solve_chain(lam, alpha, tau0, bmax, k)
        if pi[int(0.9 * k) :].sum() < tol:
            break
        if k >= max_states:
            raise RuntimeError(f"dynamic batching chain needs more than {max_states} states (load {load:.6g})")
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


def _unbounded_result(lam: float, alpha: float, tau0: float) -> BatchQueueResult:
    pi0, eb, eb2 = _unbounded_moments(lam, alpha, tau0)
    wait = (eb2 - eb) / (2.0 * lam * eb)
    own = (alpha * eb2 + tau0 * eb) / eb
    busy = alpha * eb + tau0
    util = busy / (busy + pi0 / lam)
    empty = np.zeros(0)
    return BatchQueueResult(wait, wait + own, eb, eb2, empty.astype(np.int64), empty, util)


def elastic_batching_mean_wait(lam: float, alpha: float, tau0: float) -> BatchQueueResult:
    """Elastic batching (no intra-batch waiting) in the τ[b] = α·b + τ0 model.

    Elastic batching removes *intra-batch* waiting (a request need not wait for the longest output in
    its batch) and a free server starts a batch with everything waiting. When batch time depends
    only on the batch size there is no intra-batch waiting to remove, so the policy is exactly
    dynamic batching with unlimited batches: this returns ``dynamic_batching_mean_wait(lam, alpha,
    tau0, b_max=None)`` — exact within this model (derived, not a bound). Length-dependent batch
    times (H[b] with the longest output E[L]) are out of scope here; use the simulator. Stable iff λα < 1.
    """
    return dynamic_batching_mean_wait(lam, alpha, tau0, b_max=None)


def _spitzer_ekd1(lam: float, k: int, d: float, *, rel_tol: float = 1e-13, max_terms: int = 50_000_000) -> float:
    """Mean wait in queue of E_k/D/1 (Erlang-k interarrivals, phase rate λ) by Spitzer's series."""
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
        ratio = last / prev if prev > 0.0 else 0.0
        # terms decay geometrically in n: the tail is about last·r/(1−r)
        if last == 0.0 or (ratio < 1.0 and last * ratio / (1.0 - ratio) <= rel_tol * total):
            return total
        n0, chunk = n0 + chunk, min(chunk * 2, 1 << 20)
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
    Source: Spitzer's identity (Spitzer 1956; Asmussen, *Applied Probability and Queues*, 2003);
    the batching model of Yang, Jiao & Xu (2024).
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
