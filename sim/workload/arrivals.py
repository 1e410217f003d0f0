"""Arrival processes, registered by `kind` in `ARRIVALS`: a config class and a factory that draws the times.

A factory is `f(config, *, num_requests, duration_s, base_dir, rngs) -> Arrivals`: sorted arrival times that
respect the workload's limits, each process drawing only from its own named stream of `rngs`. A process that
replays a trace (`replays_trace`) may also hand back the trace's lengths, prefix block ids and class labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.config.limits import MAX_RATE
from sim.core.registry import ARRIVALS
from sim.errors import ServesimError
from sim.workload.traces import TraceFormat, read_trace, spread_buckets


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class Arrivals:
    """Arrival times in seconds (sorted), and what a replayed trace knows about the same requests."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None
    hash_ids: list[np.ndarray] | None = None
    labels: np.ndarray | None = None  # class names, when the trace has them


class PoissonArrival(_Strict):
    """Exponential inter-arrival times at `rate` requests per second."""

    kind: Literal["poisson"] = "poisson"
    rate: float = Field(gt=0, le=MAX_RATE, description="requests per second")


class GammaArrival(_Strict):
    """Gamma inter-arrival times with mean 1/rate and coefficient of variation `cv` (cv=1 is Poisson)."""

    kind: Literal["gamma"] = "gamma"
    rate: float = Field(gt=0, le=MAX_RATE)
    cv: float = Field(gt=0, le=1000, description="std/mean of inter-arrival times; >1 burstier than Poisson")


class TraceArrival(_Strict):
    """Replay a trace's timestamps (and its lengths, unless `workload.lengths` is given)."""

    kind: Literal["trace"] = "trace"
    path: str = Field(description="a file, or a shipped trace name from `servesim list traces`")
    format: TraceFormat
    time_scale: float = Field(
        default=1.0, ge=1e-6, le=1e6, description="multiplies inter-arrival gaps: 0.5 = twice as fast"
    )
    spread_buckets: bool = Field(default=False, description="spread requests sharing a timestamp over its bucket")


def renewal_times(
    gaps: Callable[[int], np.ndarray], rate: float, num_requests: int | None, duration_s: float | None
) -> np.ndarray:
    """Arrival times of a renewal process whose `gaps(n)` draws n inter-arrival times of mean 1/rate."""
    if num_requests is not None:
        t = np.cumsum(gaps(num_requests))
        return t[t < duration_s] if duration_s is not None else t
    assert duration_s is not None  # the scenario requires one of the two for a synthetic process
    chunks, t0 = [], 0.0
    while t0 < duration_s:  # draw in chunks until the duration is covered
        c = t0 + np.cumsum(gaps(max(1024, int(duration_s * rate * 1.1))))
        chunks.append(c)
        t0 = float(c[-1])
    t = np.concatenate(chunks)
    return t[t < duration_s]


@ARRIVALS.register("poisson", PoissonArrival)
def _poisson(
    cfg: PoissonArrival,
    *,
    num_requests: int | None,
    duration_s: float | None,
    rngs: Mapping[str, np.random.Generator],
    **_: object,
) -> Arrivals:
    """exponential inter-arrival gaps at `rate` per second"""
    rng = rngs["arrivals"]
    return Arrivals(renewal_times(lambda n: rng.exponential(1.0 / cfg.rate, n), cfg.rate, num_requests, duration_s))


@ARRIVALS.register("gamma", GammaArrival)
def _gamma(
    cfg: GammaArrival,
    *,
    num_requests: int | None,
    duration_s: float | None,
    rngs: Mapping[str, np.random.Generator],
    **_: object,
) -> Arrivals:
    """gamma inter-arrival gaps: mean 1/rate, coefficient of variation `cv` (bursty when cv > 1)"""
    rng = rngs["arrivals"]
    shape = 1.0 / cfg.cv**2
    mean = 1.0 / cfg.rate
    return Arrivals(renewal_times(lambda n: rng.gamma(shape, mean / shape, n), cfg.rate, num_requests, duration_s))


@ARRIVALS.register("trace", TraceArrival, replays_trace=True)
def _trace(
    cfg: TraceArrival,
    *,
    num_requests: int | None,
    duration_s: float | None,
    base_dir: Path,
    rngs: Mapping[str, np.random.Generator],
    **_: object,
) -> Arrivals:
    """replay a trace's timestamps (time-scaled), lengths, prefix block ids and class labels"""
    tr = read_trace(cfg.path, cfg.format, base_dir)
    if tr.arrival_s is None:
        raise ServesimError(
            f"{tr.source}: format {cfg.format!r} has no timestamps; use it under workload.lengths "
            "with a poisson or gamma arrival"
        )
    t = tr.arrival_s
    if cfg.spread_buckets:
        t = spread_buckets(t, rngs["spread"])
    t = t * cfg.time_scale
    keep = np.ones(len(t), dtype=bool)
    if duration_s is not None:
        keep &= t < duration_s
    idx = np.flatnonzero(keep)
    if num_requests is not None:
        idx = idx[:num_requests]
    return Arrivals(
        t[idx],
        tr.prompt_tokens[idx],
        tr.output_tokens[idx],
        [tr.hash_ids[i] for i in idx] if tr.hash_ids is not None else None,
        tr.classes[idx] if tr.classes is not None else None,
    )


class ClosedLoopArrival(_Strict):
    """`concurrency` clients, each sending its next request when its previous one ends (completed, rejected
    or abandoned) plus a think time — how vLLM `bench serve --max-concurrency`, aiperf, GuideLLM and
    inference-perf drive a server. Requests are issued in workload order until `num_requests`."""

    kind: Literal["closed_loop"] = "closed_loop"
    concurrency: int = Field(ge=1, description="clients, each with at most one request outstanding")
    think_time_s: float = Field(default=0.0, ge=0, description="mean pause between a response and the next request")
    think_time: Literal["fixed", "exponential"] = Field(
        default="fixed", description="think-time distribution (exponential draws from the `think` stream)"
    )
    ramp_up_s: float = Field(
        default=0.0, ge=0, description="client i sends its first request at i * ramp_up_s / concurrency"
    )


@ARRIVALS.register("closed_loop", ClosedLoopArrival, follows_completions=True)
def _closed_loop(cfg: ClosedLoopArrival, *, num_requests: int | None, **_: object) -> Arrivals:
    """closed loop: `concurrency` clients, each sending its next request when its previous one ends"""
    assert num_requests is not None  # the workload validator requires it
    return Arrivals(np.full(num_requests, np.nan))  # times are set by the engine as clients send
