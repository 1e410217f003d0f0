"""Multi-server and general-arrival approximations for a first cut at capacity.

* :func:`erlang_c` — probability that an arrival waits in M/M/c (exact);
* :func:`mmc` — M/M/c mean values (exact);
* :func:`mgc_allen_cunneen` — M/G/c via the Allen–Cunneen correction (approximate);
* :func:`ggc_allen_cunneen` — G/G/c via Allen–Cunneen (approximate);
* :func:`kingman_gg1` — G/G/1 via Kingman's heavy-traffic formula (approximate).

All return :class:`queueing.single.QueueResult` (``rho`` is the per-server utilisation λE[S]/c)
except :func:`erlang_c`, which returns a probability. Times in seconds, rates per second.
"""

from __future__ import annotations

from queueing.errors import UnstableError, check_nonnegative, check_positive
from queueing.single import QueueResult

__all__ = ["erlang_c", "ggc_allen_cunneen", "kingman_gg1", "mgc_allen_cunneen", "mmc"]


def _servers(c: int) -> int:
    if isinstance(c, bool) or int(c) != c or c < 1:
        raise ValueError(f"c (number of servers) must be a positive integer, got {c!r}")
    return int(c)


def _result(lam: float, rho: float, wait: float, es: float) -> QueueResult:
    return QueueResult(
        rho=float(rho),
        wait_s=float(wait),
        sojourn_s=float(wait + es),
        queue_len=float(lam * wait),
        system_len=float(lam * (wait + es)),
    )


def erlang_c(c: int, a: float) -> float:
    """Erlang-C: probability that an arrival must wait in an M/M/c queue with offered load ``a``.

    Assumptions: Poisson arrivals, exponential service, c identical servers, infinite buffer;
    ``a`` = λ/μ = λE[S] in Erlangs; stable iff a < c (else :class:`UnstableError`).

    Formula: C(c, a) = c·B / (c − a(1 − B)), with the Erlang-B blocking probability from the
    numerically stable recursion B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)).
    Source: Erlang (1917); Kleinrock vol. 1, ch. 3 (M/M/m); Harchol-Balter (2013), ch. 14.
    """
    c = _servers(c)
    a = check_nonnegative("a", a)
    if a >= c:
        raise UnstableError(a / c, **{"servers": c, "offered_load": a})
    if a == 0.0:
        return 0.0
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def mmc(lam: float, mu: float, c: int) -> QueueResult:
    """M/M/c FCFS mean values (exact).

    Assumptions: Poisson(λ) arrivals, exponential service at rate μ per server, c servers.
    Formula: a = λ/μ, ρ = a/c;  E[Wq] = C(c, a) / (cμ − λ);  E[T] = E[Wq] + 1/μ.
    Source: Kleinrock vol. 1, ch. 3. Raises :class:`UnstableError` if λ ≥ cμ.
    """
    lam = check_positive("lam", lam)
    mu = check_positive("mu", mu)
    c = _servers(c)
    a = lam / mu
    if a >= c:
        raise UnstableError(a / c, **{"lambda": lam, "E[S]": 1.0 / mu, "servers": c})
    wait = erlang_c(c, a) / (c * mu - lam)
    return _result(lam, a / c, wait, 1.0 / mu)


def ggc_allen_cunneen(lam: float, es: float, ca2: float, cs2: float, c: int) -> QueueResult:
    """G/G/c mean values by the Allen–Cunneen approximation.

    Assumptions: renewal arrivals at rate λ with interarrival SCV ``ca2`` (Var/mean²), i.i.d.
    service with mean ``es`` and SCV ``cs2``, c servers, FCFS. An approximation: exact for M/M/c
    (ca² = cs² = 1), typically within ~10% for moderate variability, poorer in light traffic.

    Formula: E[Wq] ≈ (ca² + cs²)/2 · E[Wq(M/M/c)] = (ca² + cs²)/2 · C(c, a)·E[S]/(c − a), a = λE[S].
    Source: Allen, *Probability, Statistics and Queueing Theory with Computer Science
    Applications*, 2nd ed. (1990); Hopp & Spearman, *Factory Physics* (2008), ch. 8.
    Raises :class:`UnstableError` if λE[S] ≥ c.
    """
    lam = check_positive("lam", lam)
    es = check_positive("es", es)
    ca2 = check_nonnegative("ca2", ca2)
    cs2 = check_nonnegative("cs2", cs2)
    c = _servers(c)
    a = lam * es
    if a >= c:
        raise UnstableError(a / c, **{"lambda": lam, "E[S]": es, "servers": c})
    wq_mmc = erlang_c(c, a) * es / (c - a)
    return _result(lam, a / c, 0.5 * (ca2 + cs2) * wq_mmc, es)


def mgc_allen_cunneen(lam: float, es: float, cs2: float, c: int) -> QueueResult:
    """M/G/c mean values by Allen–Cunneen with Poisson arrivals (ca² = 1).

    Formula: E[Wq] ≈ (1 + cs²)/2 · C(c, a)·E[S]/(c − a), a = λE[S], cs² = Var(S)/E[S]².
    Exact for c = 1 (it is then Pollaczek–Khinchine) and for exponential service (cs² = 1).
    Source: as :func:`ggc_allen_cunneen`. Raises :class:`UnstableError` if λE[S] ≥ c.
    """
    return ggc_allen_cunneen(lam, es, 1.0, cs2, c)


def kingman_gg1(lam: float, es: float, ca2: float, cs2: float) -> QueueResult:
    """G/G/1 mean wait by Kingman's formula (the "VUT" equation).

    Assumptions: renewal arrivals at rate λ with interarrival SCV ``ca2``, i.i.d. service with mean
    ``es`` and SCV ``cs2``, one FCFS server. An approximation, exact in heavy traffic (ρ → 1) and
    exact for M/G/1 (ca² = 1, where it reduces to Pollaczek–Khinchine).

    Formula: E[Wq] ≈ ρ/(1 − ρ) · (ca² + cs²)/2 · E[S], ρ = λE[S].
    Source: Kingman (1961), "The single server queue in heavy traffic". Raises
    :class:`UnstableError` if ρ ≥ 1.
    """
    lam = check_positive("lam", lam)
    es = check_positive("es", es)
    ca2 = check_nonnegative("ca2", ca2)
    cs2 = check_nonnegative("cs2", cs2)
    rho = lam * es
    if rho >= 1.0:
        raise UnstableError(rho, **{"lambda": lam, "E[S]": es})
    wait = rho / (1.0 - rho) * 0.5 * (ca2 + cs2) * es
    return _result(lam, rho, wait, es)
