"""Turn a scenario's workload section into arrays: arrival times, prompt and output lengths.

The arrival process and the length distribution are registered kinds (`sim.workload.arrivals`,
`sim.workload.lengths`, or a plugin's); each draws from its own seeded stream. A process that replays a trace
brings the trace's own lengths, used unless `workload.lengths` overrides them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.config.scenario import Scenario
from sim.core.registry import ARRIVALS, LENGTHS, PREDICTORS
from sim.core.rng import streams
from sim.errors import ServesimError


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


def build_requests(sc: Scenario) -> Requests:
    """The scenario's requests, deterministic in `sc.seed`."""
    rngs = streams(sc.seed)
    wl = sc.workload
    hash_ids = None
    arr = ARRIVALS.build(
        wl.arrival, num_requests=wl.num_requests, duration_s=wl.duration_s, base_dir=sc.base_dir, rngs=rngs
    )
    t = arr.arrival_s
    labels = arr.labels
    if wl.lengths is None:  # the workload validator allows this only for a process that brings its lengths
        if arr.prompt_tokens is None or arr.output_tokens is None:
            raise ServesimError(f"workload.arrival: kind {wl.arrival.kind!r} brings no lengths; add workload.lengths")
        prompt, output, hash_ids = arr.prompt_tokens, arr.output_tokens, arr.hash_ids
    else:
        prompt, output = LENGTHS.build(wl.lengths, n=len(t), base_dir=sc.base_dir, rng=rngs["lengths"])
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
