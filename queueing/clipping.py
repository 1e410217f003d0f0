"""M/G/1 with max-token clipping (Yang, Jiao & Xu, arXiv 2407.05347, 2024).

A request that would generate N output tokens is cut at ``n_max``; its service time is

    S = c + a·min(N, n_max)        (a: seconds per output token, c: constant seconds)

(input length ignored: the paper measured ~8% latency change over 64→512 input tokens vs ~8× over
128→1024 output tokens). Arrivals are Poisson, one FCFS server, so the Pollaczek–Khinchine formula
applies to the clipped service law.

Output lengths are given either as a pmf — a :class:`TokenPmf`, or a pair ``(values, probs)`` of
array-likes — or as a 1-D sample of lengths, from which the empirical pmf is built.

Choosing ``n_max``: clipping shortens service, so the mean wait falls monotonically as ``n_max``
falls; "the optimal limit" is only meaningful against the loss of the clipped answers. The paper
text behind the reported optimum was not available here; a public reimplementation states that the
paper's optimum "is where the utility-vs-delay objective peaks, not where delay is smallest", and
that the delay curve itself is monotone. :func:`optimal_n_max` therefore minimises the mean wait
plus an explicit, documented price for clipping — see its docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from queueing.errors import UnstableError, check_nonnegative, check_positive
from queueing.single import mg1

__all__ = [
    "DEFAULT_CLIP_PENALTY_S",
    "ClipMoments",
    "ClippedQueueResult",
    "OptimalClip",
    "TokenPmf",
    "clipped_moments",
    "impatient_wait",
    "mean_delay",
    "optimal_n_max",
    "token_pmf",
]

#: Default price of one clipped answer, in seconds of mean waiting (see :func:`optimal_n_max`).
DEFAULT_CLIP_PENALTY_S = 80.0

# Above this many integer candidates the default search uses the support plus a log grid.
_MAX_DENSE_CANDIDATES = 2_000_000


@dataclass(frozen=True, eq=False, slots=True)
class TokenPmf:
    """A pmf of output-token lengths: sorted distinct ``values`` >= 0 with ``probs`` summing to 1."""

    values: np.ndarray
    probs: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.values @ self.probs)


class ClipMoments(NamedTuple):
    """Moments of the clipped service time S = c + a·min(N, n_max), and P(N > n_max)."""

    es: float
    es2: float
    frac_clipped: float


class OptimalClip(NamedTuple):
    """Result of :func:`optimal_n_max`."""

    n_max: float
    mean_wait_s: float
    frac_clipped: float


@dataclass(frozen=True, slots=True)
class ClippedQueueResult:
    """M/G/1 mean values under clipping, plus the clipped fraction and service moments."""

    rho: float
    wait_s: float
    sojourn_s: float
    queue_len: float
    system_len: float
    frac_clipped: float
    es: float
    es2: float


def _is_pair(x: object) -> bool:
    return isinstance(x, tuple | list) and len(x) == 2 and all(np.ndim(e) == 1 for e in x)


def token_pmf(lengths: TokenPmf | tuple[ArrayLike, ArrayLike] | ArrayLike) -> TokenPmf:
    """Normalise ``lengths`` into a :class:`TokenPmf`.

    Accepts a :class:`TokenPmf` (returned as is), a pair ``(values, probs)`` of 1-D array-likes
    (duplicates merged; probs must be >= 0 and sum to 1 within 1e-6, then renormalised), or a 1-D
    sample of lengths (empirical pmf: each distinct value with its relative frequency).
    """
    if isinstance(lengths, TokenPmf):
        return lengths
    if _is_pair(lengths):
        values = np.asarray(lengths[0], dtype=float)  # type: ignore[index]  # _is_pair: a (values, probs) pair
        probs = np.asarray(lengths[1], dtype=float)  # type: ignore[index]  # _is_pair: a (values, probs) pair
        if values.shape != probs.shape or values.size == 0:
            raise ValueError("pmf values and probs must be non-empty and of equal length")
        if not np.all(np.isfinite(probs)) or np.any(probs < 0.0):
            raise ValueError("pmf probs must be finite and >= 0")
        total = float(probs.sum())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"pmf probs sum to {total:.9g}, not 1")
        uniq, inv = np.unique(values, return_inverse=True)
        merged = np.bincount(inv, weights=probs, minlength=uniq.size) / total
    else:
        sample = np.asarray(lengths, dtype=float).ravel()
        if sample.size == 0:
            raise ValueError("lengths sample is empty")
        uniq, counts = np.unique(sample, return_counts=True)
        merged = counts / sample.size
        values = sample
    if not np.all(np.isfinite(values)) or np.any(values < 0.0):
        raise ValueError("token lengths must be finite and >= 0")
    keep = merged > 0.0
    return TokenPmf(values=uniq[keep], probs=merged[keep])


def _curve(pmf: TokenPmf, ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each cap n: E[min(N,n)], E[min(N,n)^2], P(N>n), E[(N-n)^+] (vectorised, exact)."""
    v, p = pmf.values, pmf.probs
    cum1 = np.concatenate(([0.0], np.cumsum(v * p)))
    cum2 = np.concatenate(([0.0], np.cumsum(v * v * p)))
    tail = np.concatenate((np.cumsum(p[::-1])[::-1], [0.0]))  # tail[k] = P(index >= k)
    k = np.searchsorted(v, ns, side="right")  # number of support points <= n
    over = tail[k]
    m1 = cum1[k] + ns * over
    m2 = cum2[k] + ns * ns * over
    lost = np.maximum(pmf.mean - m1, 0.0)
    return m1, m2, over, lost


def _service_moments(m1: np.ndarray, m2: np.ndarray, a: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    return c + a * m1, c * c + 2.0 * a * c * m1 + a * a * m2


def clipped_moments(
    lengths: TokenPmf | tuple[ArrayLike, ArrayLike] | ArrayLike, a: float, c: float, n_max: float | None
) -> ClipMoments:
    """E[S], E[S²] and P(N > n_max) for S = c + a·min(N, n_max).

    Formula (Yang, Jiao & Xu 2024): n' = min(N, n_max); E[S] = c + a·E[n']; E[S²] = E[S]² + a²·Var(n').
    ``n_max=None`` (or ``inf``) means no clipping. Lengths as in :func:`token_pmf`.
    """
    pmf = token_pmf(lengths)
    a = check_positive("a", a)
    c = check_nonnegative("c", c)
    n = np.inf if n_max is None else check_positive("n_max", n_max)
    cap = np.array([min(n, float(pmf.values[-1]))])
    m1, m2, over, _ = _curve(pmf, cap)
    es, es2 = _service_moments(m1, m2, a, c)
    return ClipMoments(float(es[0]), float(es2[0]), float(over[0]))


def mean_delay(
    lam: float,
    lengths: TokenPmf | tuple[ArrayLike, ArrayLike] | ArrayLike,
    a: float,
    c: float,
    n_max: float | None,
) -> ClippedQueueResult:
    """M/G/1 mean values when every request is clipped at ``n_max`` output tokens.

    Assumptions: Poisson arrivals at rate ``lam``; i.i.d. lengths N; service S = c + a·min(N, n_max);
    one FCFS server. Formula: Pollaczek–Khinchine on the clipped moments,
    E[Wq] = λE[S²] / (2(1 − ρ)), ρ = λE[S] (Yang, Jiao & Xu 2024).
    Raises :class:`UnstableError` if ρ ≥ 1.
    """
    es, es2, frac = clipped_moments(lengths, a, c, n_max)
    q = mg1(lam, es, es2)
    return ClippedQueueResult(q.rho, q.wait_s, q.sojourn_s, q.queue_len, q.system_len, frac, es, es2)


def _default_candidates(pmf: TokenPmf) -> np.ndarray:
    top = float(pmf.values[-1])
    pos = pmf.values[pmf.values > 0.0]
    dense = top <= _MAX_DENSE_CANDIDATES
    grid = np.arange(1.0, np.floor(top) + 1.0) if dense else np.geomspace(1.0, top, 20_000)
    return np.unique(np.concatenate((grid, pos, [top])))


def optimal_n_max(
    lam: float,
    lengths: TokenPmf | tuple[ArrayLike, ArrayLike] | ArrayLike,
    a: float,
    c: float,
    *,
    candidates: ArrayLike | None = None,
    penalty_per_clipped_s: float = DEFAULT_CLIP_PENALTY_S,
    penalty_per_lost_token_s: float = 0.0,
) -> OptimalClip:
    """The clipping limit that minimises mean wait plus a price for clipped answers.

    Objective (over candidate caps n; unstable caps, ρ(n) ≥ 1, are skipped):

        J(n) = E[Wq](n) + γ·P(N > n) + β·E[(N − n)⁺]

    with E[Wq](n) the P–K wait of :func:`mean_delay`, γ = ``penalty_per_clipped_s`` (seconds of
    waiting that one truncated answer is worth) and β = ``penalty_per_lost_token_s`` (seconds per
    undelivered token). Returns the minimising cap (smallest on ties), its E[Wq] and P(N > n).

    Why this objective: E[Wq](n) alone is increasing in n, so minimising it would pick the smallest
    cap. The paper's optimum trades delay against the utility of the answer (second-hand: a public
    reimplementation calls it "the utility-vs-delay objective"; the paper's exact utility was not
    found). A re-submission model — clipped users ask again for the rest, which queues as a new job —
    was checked and rejected: with c ≈ 0 total work is unchanged and splitting long jobs makes FCFS
    behave more like processor sharing, so the delay again falls monotonically with n (no optimum).

    Shape: for a continuous law, J'(n) = P(N>n)·[λa(c + an + E[Wq](n))/(1 − ρ(n)) − β] − γ·f(n).
    With β only, the bracket is increasing in n, so J is unimodal with a unique interior optimum.
    With γ only, the optimum is interior when the tail is heavy (hazard f/P not increasing), which
    is the LLM case; for a bounded, light-tailed law it may sit at the largest length (no clipping).

    Default γ = 80 s is a calibration, not a value from the paper: with λ = 1/40 req/s,
    a = 0.0225 s/token, c = 0 and lognormal(μ=7, σ=0.7) output lengths (the law the reimplementation
    fitted to the paper's Fig. 4), it reproduces the reported optimum n_max ≈ 1600 (E[Wq] ≈ 22 s,
    29% of requests clipped). Set the penalties from your own quality/latency trade-off.

    ``candidates`` default: every integer 1..max length plus the support (exact over integer caps).
    """
    pmf = token_pmf(lengths)
    lam = check_positive("lam", lam)
    a = check_positive("a", a)
    c = check_nonnegative("c", c)
    gamma = check_nonnegative("penalty_per_clipped_s", penalty_per_clipped_s)
    beta = check_nonnegative("penalty_per_lost_token_s", penalty_per_lost_token_s)
    if candidates is None:
        ns = _default_candidates(pmf)
    else:
        ns = np.unique(np.asarray(candidates, dtype=float).ravel())
        if ns.size == 0 or not np.all(np.isfinite(ns)) or np.any(ns <= 0.0):
            raise ValueError("candidates must be a non-empty set of finite caps > 0")
    m1, m2, over, lost = _curve(pmf, ns)
    es, es2 = _service_moments(m1, m2, a, c)
    rho = lam * es
    stable = rho < 1.0
    if not np.any(stable):
        i = int(np.argmin(rho))
        raise UnstableError(float(rho[i]), **{"lambda": lam, "E[S]": float(es[i]), "n_max": float(ns[i])})
    wait = np.full(ns.shape, np.inf)
    wait[stable] = lam * es2[stable] / (2.0 * (1.0 - rho[stable]))
    objective = wait + gamma * over + beta * lost
    i = int(np.argmin(objective))
    best = float(ns[i])
    return OptimalClip(int(best) if best.is_integer() else best, float(wait[i]), float(over[i]))


def impatient_wait(tau: float, pi_tau: float, wait_served: float) -> float:
    """Mean queueing delay over all users when impatient users leave after waiting ``tau``.

    Assumptions: deterministic patience τ; a fraction π(τ) = ``pi_tau`` of users abandon (each
    after waiting exactly τ); the served users' mean wait is ``wait_served`` (< τ by definition).

    Formula: E[Wq] = τ·π(τ) + E[Wq,served]·(1 − π(τ))  (Yang, Jiao & Xu 2024; π(τ) and
    E[Wq,served] themselves come from an M/G/1+D analysis or a simulation).
    """
    tau = check_nonnegative("tau", tau)
    pi = float(pi_tau)
    if not 0.0 <= pi <= 1.0:
        raise ValueError(f"pi_tau must be a probability in [0, 1], got {pi_tau!r}")
    w = check_nonnegative("wait_served", wait_served)
    if w > tau:
        raise ValueError(f"wait_served = {w:.6g} exceeds the patience tau = {tau:.6g}")
    return tau * pi + w * (1.0 - pi)
