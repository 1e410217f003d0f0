"""Turn a scenario's workload section into arrays: arrival times, prompt and output lengths.

Synthetic arrivals (Poisson, Gamma) and synthetic lengths draw from their own seeded streams; trace
replay reads timestamps (scaled by `time_scale`) and, unless overridden, the trace's own lengths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.config.scenario import (
    FixedLengths,
    GammaArrival,
    LognormalLengths,
    PoissonArrival,
    Scenario,
    TraceArrival,
    TraceLengths,
)
from sim.core.rng import streams
from sim.errors import ServesimError
from sim.workload.traces import Trace, load_trace, resolve_trace_path, spread_buckets


@dataclass(frozen=True)
class Requests:
    """The workload as columns, sorted by arrival."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    hash_ids: list[np.ndarray] | None = None
    clipped: np.ndarray | None = None  # True where `admission.max_tokens` cut the output
    cls: np.ndarray | None = None  # index into `workload.classes`
    priority: np.ndarray | None = None  # the class's priority (lower is served first)
    predicted: np.ndarray | None = None  # the `predictor`'s output length, when one is configured

    def __len__(self) -> int:
        return len(self.arrival_s)

    def head(self, m: int) -> Requests:
        """The first `m` requests (in arrival order)."""

        def cut(x: Any) -> Any:
            return None if x is None else x[:m]

        return dataclasses.replace(
            self,
            arrival_s=self.arrival_s[:m],
            prompt_tokens=self.prompt_tokens[:m],
            output_tokens=self.output_tokens[:m],
            hash_ids=cut(self.hash_ids),
            clipped=cut(self.clipped),
            cls=cut(self.cls),
            priority=cut(self.priority),
            predicted=cut(self.predicted),
        )


def _resolve(path: str, base: Path) -> Path:
    p = Path(path)
    if not p.is_absolute() and not p.exists() and (base / p).exists():
        return base / p
    return resolve_trace_path(path)


def _read(path: str, fmt: str, base: Path) -> Trace:
    return load_trace(_resolve(path, base), "vidur" if fmt == "lengths" else fmt)


def _gaps(arr: PoissonArrival | GammaArrival, n: int, rng: np.random.Generator) -> np.ndarray:
    mean = 1.0 / arr.rate
    if isinstance(arr, PoissonArrival):
        return rng.exponential(mean, n)
    shape = 1.0 / arr.cv**2
    return rng.gamma(shape, mean / shape, n)


def _synthetic_arrivals(sc: Scenario, rng: np.random.Generator) -> np.ndarray:
    wl = sc.workload
    arr = wl.arrival
    assert isinstance(arr, PoissonArrival | GammaArrival)
    if wl.num_requests is not None:
        t = np.cumsum(_gaps(arr, wl.num_requests, rng))
        return t[t < wl.duration_s] if wl.duration_s is not None else t
    assert wl.duration_s is not None
    chunks, t0 = [], 0.0
    while t0 < wl.duration_s:  # draw in chunks until the duration is covered
        c = t0 + np.cumsum(_gaps(arr, max(1024, int(wl.duration_s * arr.rate * 1.1)), rng))
        chunks.append(c)
        t0 = float(c[-1])
    t = np.concatenate(chunks)
    return t[t < wl.duration_s]


def _sample_lengths(sc: Scenario, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    spec = sc.workload.lengths
    if isinstance(spec, FixedLengths):
        return np.full(n, spec.prompt, dtype=np.int64), np.full(n, spec.output, dtype=np.int64)
    if isinstance(spec, LognormalLengths):
        p = rng.lognormal(np.log(spec.prompt_median), spec.prompt_sigma, n)
        o = rng.lognormal(np.log(spec.output_median), spec.output_sigma, n)
        return (
            np.clip(np.rint(p), 1, spec.max_prompt).astype(np.int64),
            np.clip(np.rint(o), 1, spec.max_output).astype(np.int64),
        )
    assert isinstance(spec, TraceLengths)
    tr = _read(spec.path, spec.format, sc.base_dir)
    idx = rng.integers(0, len(tr), n) if spec.sample == "random" else np.arange(n) % len(tr)
    return tr.prompt_tokens[idx], tr.output_tokens[idx]


def build_requests(sc: Scenario) -> Requests:
    """The scenario's requests, deterministic in `sc.seed`."""
    rngs = streams(sc.seed)
    wl = sc.workload
    hash_ids = None
    labels = None  # class names from the trace, when it has them
    if isinstance(wl.arrival, TraceArrival):
        tr = _read(wl.arrival.path, wl.arrival.format, sc.base_dir)
        if tr.arrival_s is None:
            raise ServesimError(
                f"{tr.source}: format {wl.arrival.format!r} has no timestamps; use it under workload.lengths "
                "with a poisson or gamma arrival"
            )
        t = tr.arrival_s
        if wl.arrival.spread_buckets:
            t = spread_buckets(t, rngs["spread"])
        t = t * wl.arrival.time_scale
        keep = np.ones(len(t), dtype=bool)
        if wl.duration_s is not None:
            keep &= t < wl.duration_s
        idx = np.flatnonzero(keep)
        if wl.num_requests is not None:
            idx = idx[: wl.num_requests]
        t = t[idx]
        if tr.classes is not None:
            labels = tr.classes[idx]
        if wl.lengths is None:
            prompt, output = tr.prompt_tokens[idx], tr.output_tokens[idx]
            if tr.hash_ids is not None:
                hash_ids = [tr.hash_ids[i] for i in idx]
        else:
            prompt, output = _sample_lengths(sc, len(t), rngs["lengths"])
    else:
        t = _synthetic_arrivals(sc, rngs["arrivals"])
        prompt, output = _sample_lengths(sc, len(t), rngs["lengths"])
    if len(t) == 0:
        raise ServesimError("workload: no requests (check num_requests, duration_s and the trace)")
    output, clipped = sc.admission.clip(output)
    cls = priority = predicted = None
    if wl.classes and labels is not None:  # the trace names each request's class
        names = {c.name: i for i, c in enumerate(wl.classes)}
        unknown = sorted(set(labels.tolist()) - set(names))
        if unknown:
            raise ServesimError(f"workload: trace class {unknown[0]!r} is not in workload.classes {sorted(names)}")
        cls = np.array([names[x] for x in labels.tolist()], dtype=np.int64)
        priority = np.array([c.priority for c in wl.classes], dtype=np.int64)[cls]
    elif wl.classes:
        share = np.array([c.share for c in wl.classes], dtype=np.float64)
        cls = rngs["classes"].choice(len(share), size=len(t), p=share / share.sum()).astype(np.int64)
        priority = np.array([c.priority for c in wl.classes], dtype=np.int64)[cls]
    if sc.predictor is not None:
        from policies.registry import PREDICTORS

        predictor = PREDICTORS.build(sc.predictor)
        predicted = predictor.predict(output, prompt, rngs["predictor"]).astype(np.int64)
    return Requests(
        np.asarray(t, dtype=np.float64),
        prompt.astype(np.int64),
        output.astype(np.int64),
        hash_ids,
        clipped if sc.admission.max_tokens is not None else None,
        cls,
        priority,
        predicted,
    )
