"""Replications and the verdict: independent runs per (setup, ρ), warm-up deleted, t-intervals of the means.

Seeds come from ``numpy.random.SeedSequence`` per (setup, ρ), so results do not depend on which other
setups or loads are run, nor on the number of worker processes.
"""

from __future__ import annotations

import math
import os
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from sim.tools.queueing_check.report import CheckReport, CheckRow
from sim.tools.queueing_check.setups import SETUPS


@dataclass(frozen=True)
class _Task:
    setup: str
    rho: float
    lam: float
    seed: np.random.SeedSequence
    requests: int
    warmup: float


def replicate(task: _Task) -> dict[str, float]:
    """Run one replication and return the post-warm-up mean of each compared metric (seconds)."""
    import sim

    setup = SETUPS[task.setup]
    with tempfile.TemporaryDirectory(prefix="servesim-check-") as tmp:
        res = sim.run(setup.build(task.lam, task.seed, task.requests, Path(tmp)))
    counts = res.summary["counts"]
    if counts["completed"] != counts["arrived"] or counts["preemptions"]:
        raise RuntimeError(f"{task.setup}: the check scenario must complete every request without preemption: {counts}")
    setup.verify(res)
    df = res.requests  # rows in arrival order
    keep = df.iloc[int(task.warmup * len(df)) :]
    return {c.metric: float(keep[c.metric].mean()) for c in setup.comparisons} | {"n": float(len(keep))}


def t_interval(means: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval over independent replication means."""
    x = np.asarray(means, dtype=float)
    if x.size < 2:
        raise ValueError("a confidence interval needs at least 2 replications")
    m = float(x.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2.0, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - half, m + half


def parse_rhos(text: str) -> list[float]:
    """'0.3,0.6,0.8' → [0.3, 0.6, 0.8]; each load must lie in (0, 1)."""
    try:
        rhos = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--rho must be comma-separated numbers, got {text!r}") from None
    if not rhos or any(not 0.0 < r < 1.0 for r in rhos):
        raise ValueError(f"--rho values must lie in (0, 1), got {text!r}")
    return rhos


def _seed(root: int, setup: str, rho: float) -> np.random.SeedSequence:
    """A stream per (setup, ρ), the same whichever other setups or loads are run."""
    return np.random.SeedSequence([root, zlib.crc32(setup.encode()), round(rho * 1_000_000)])


def run_checks(
    rhos: Sequence[float] = (0.3, 0.6, 0.8),
    *,
    replications: int | Mapping[float, int] = 10,
    requests: int | Mapping[float, int] = 20_000,
    models: Sequence[str] | None = None,
    seed: int = 0,
    warmup: float = 0.1,
    confidence: float = 0.95,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Simulate each setup at each load and compare with its formula.

    ``replications`` and ``requests`` (per replication) may be given per load as ``{ρ: value}``;
    ``warmup`` is the fraction of each replication's requests (in arrival order) deleted;
    ``workers`` processes run replications in parallel (default: CPU count; 1 = in this process).
    Results do not depend on ``workers``.
    """
    names = list(SETUPS) if models is None else list(models)
    unknown = [m for m in names if m not in SETUPS]
    if unknown:
        raise ValueError(f"unknown queueing check(s) {unknown}; known: {', '.join(SETUPS)}")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")

    def per_rho(v: int | Mapping[float, int], rho: float) -> int:
        return int(v[rho]) if isinstance(v, Mapping) else int(v)

    report = CheckReport(confidence=confidence)
    tasks: list[_Task] = []
    for name in names:
        setup = SETUPS[name]
        for rho in rhos:
            reps, n = per_rho(replications, rho), per_rho(requests, rho)
            if reps < 2 or n < 10:
                raise ValueError(f"need >= 2 replications and >= 10 requests each, got {reps} and {n}")
            lam = setup.lam(rho)
            for child in _seed(seed, name, rho).spawn(reps):
                tasks.append(_Task(name, rho, lam, child, n, warmup))
    results = _map(tasks, workers, progress)
    asserted = sum(c.kind != "approx" for n in names for c in SETUPS[n].comparisons) * len(rhos)
    report.row_confidence = 1.0 - (1.0 - confidence) / max(asserted, 1)
    for name in names:
        setup = SETUPS[name]
        for rho in rhos:
            mine = [r for t, r in zip(tasks, results, strict=True) if t.setup == name and t.rho == rho]
            lam = setup.lam(rho)
            for comp in setup.comparisons:
                means = [r[comp.metric] for r in mine]
                m, lo, hi = t_interval(means, confidence)
                _, tlo, thi = t_interval(means, report.row_confidence)
                report.rows.append(
                    CheckRow(
                        comp.label,
                        rho,
                        comp.theory(lam),
                        m,
                        lo,
                        hi,
                        tlo,
                        thi,
                        comp.kind,
                        len(mine),
                        per_rho(requests, rho),
                    )
                )
    return report


def _map(
    tasks: list[_Task], workers: int | None, progress: Callable[[int, int], None] | None
) -> list[dict[str, float]]:
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    total = len(tasks)
    if workers == 1:
        out = []
        for i, t in enumerate(tasks):
            out.append(replicate(t))
            if progress is not None:
                progress(i + 1, total)
        return out
    # big tasks first so the pool ends together; results go back to the task order
    order = sorted(range(total), key=lambda i: -tasks[i].requests / (1.0 - tasks[i].rho))
    res: list[dict[str, float] | None] = [None] * total
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for k, (i, r) in enumerate(zip(order, pool.map(replicate, [tasks[i] for i in order]), strict=True)):
            res[i] = r
            if progress is not None:
                progress(k + 1, total)
    return [r for r in res if r is not None]
