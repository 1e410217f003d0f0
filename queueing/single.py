"""Single-server FCFS queues with Poisson arrivals: M/M/1, M/D/1, M/G/1 (Pollaczek–Khinchine).

All times are seconds, rates are per second. Every function returns a :class:`QueueResult`:

* ``wait_s``     E[Wq], mean time from arrival to start of service;
* ``sojourn_s``  E[T] = E[Wq] + E[S], arrival to completion;
* ``queue_len``  E[Lq] = λ·E[Wq] (Little's law, customers waiting);
* ``system_len`` E[L] = λ·E[T] (Little's law, customers waiting or in service);
* ``rho``        utilisation λ·E[S].

Source for all formulas: any queueing text, e.g. Kleinrock, *Queueing Systems* vol. 1 (1975), ch. 3
(M/M/1) and ch. 5 (M/G/1, the P–K mean value formula); Harchol-Balter, *Performance Modeling and
Design of Computer Systems* (2013), ch. 23. Used for LLM serving by Yang, Jiao & Xu, arXiv 2407.05347
(2024).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from queueing.errors import UnstableError, check_positive

__all__ = ["QueueResult", "md1", "mg1", "mg1_from_sample", "mm1"]

# Relative slack for E[S^2] >= E[S]^2, so moments computed in floating point (e.g. a constant
# sample, whose variance is 0 up to rounding) are not rejected.
_MOMENT_RTOL = 1e-9


@dataclass(frozen=True, slots=True)
class QueueResult:
    """Mean-value results of a stable queue (seconds and customer counts)."""

    rho: float
    wait_s: float
    sojourn_s: float
    queue_len: float
    system_len: float


def _result(lam: float, rho: float, wait_s: float, service_s: float) -> QueueResult:
    sojourn = wait_s + service_s
    return QueueResult(
        rho=float(rho),
        wait_s=float(wait_s),
        sojourn_s=float(sojourn),
        queue_len=float(lam * wait_s),
        system_len=float(lam * sojourn),
    )


def mg1(lam: float, es: float, es2: float) -> QueueResult:
    """M/G/1 FCFS mean values from the first two service moments (Pollaczek–Khinchine).

    Assumptions: Poisson arrivals at rate ``lam``; i.i.d. service times independent of arrivals,
    with mean ``es`` = E[S] and second moment ``es2`` = E[S²]; one server; FCFS (the mean wait is the
    same for any work-conserving order that does not use service times); infinite buffer.

    Formula: ρ = λE[S];  E[Wq] = λE[S²] / (2(1 − ρ));  E[T] = E[Wq] + E[S];  Lq = λE[Wq], L = λE[T].

    Source: Pollaczek (1930), Khinchine (1932); Kleinrock vol. 1, ch. 5.

    Raises ``ValueError`` if λ ≤ 0, E[S] ≤ 0 or E[S²] < E[S]², and :class:`UnstableError` if ρ ≥ 1.
    """
    lam = check_positive("lam", lam)
    es = check_positive("es", es)
    es2 = check_positive("es2", es2)
    if es2 < es * es * (1.0 - _MOMENT_RTOL):
        raise ValueError(f"es2 = {es2:.6g} < es**2 = {es * es:.6g}: not a second moment (variance < 0)")
    es2 = max(es2, es * es)
    rho = lam * es
    if rho >= 1.0:
        raise UnstableError(rho, **{"lambda": lam, "E[S]": es})
    wait = lam * es2 / (2.0 * (1.0 - rho))
    return _result(lam, rho, wait, es)


def mm1(lam: float, mu: float) -> QueueResult:
    """M/M/1 FCFS: Poisson arrivals at rate ``lam``, exponential service at rate ``mu``.

    Formula: ρ = λ/μ;  E[Wq] = ρ / (μ − λ);  E[T] = 1 / (μ − λ)  (P–K with E[S²] = 2/μ²).

    Source: Kleinrock vol. 1, ch. 3. Raises :class:`UnstableError` if λ ≥ μ.
    """
    mu = check_positive("mu", mu)
    return mg1(lam, 1.0 / mu, 2.0 / (mu * mu))


def md1(lam: float, service_s: float) -> QueueResult:
    """M/D/1 FCFS: Poisson arrivals at rate ``lam``, constant service time ``service_s``.

    Formula: ρ = λD;  E[Wq] = ρD / (2(1 − ρ)) — half the M/M/1 wait at the same mean service
    (P–K with E[S²] = D²).

    Source: Kleinrock vol. 1, ch. 5. Raises :class:`UnstableError` if λD ≥ 1.
    """
    d = check_positive("service_s", service_s)
    return mg1(lam, d, d * d)


def mg1_from_sample(lam: float, service_samples: ArrayLike) -> QueueResult:
    """M/G/1 with the service law given by a sample of service times (seconds).

    Uses the empirical moments E[S] = mean(s), E[S²] = mean(s²) in :func:`mg1` (the plug-in
    estimate; exact for the empirical distribution of the sample). Assumptions as :func:`mg1`.

    Raises ``ValueError`` for an empty sample, non-finite or negative values, or a zero mean.
    """
    s = np.asarray(service_samples, dtype=float).ravel()
    if s.size == 0:
        raise ValueError("service_samples is empty")
    if not np.all(np.isfinite(s)) or np.any(s < 0.0):
        raise ValueError("service_samples must be finite and >= 0")
    return mg1(lam, float(s.mean()), float(np.mean(s * s)))
