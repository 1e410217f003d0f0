"""FastServe's skip-join multi-level feedback queue (Wu et al., 2023), preempting at token granularity.

Queue i has a time quantum `base_quantum_s · quantum_ratio^i`. A new request joins the highest queue
whose quantum covers its first iteration (the prefill, priced by the cost model), skipping the queues
above (skip-join); a request that has used its queue's quantum is demoted to the next one. Every
iteration the batch is filled from the highest queue down, FIFO within a queue (by when a request
entered it), so a newly arrived short job preempts a long one after at most one iteration.

Service is counted in generated tokens: a request's quantum in queue i is
`ceil(quantum_s(i) / t_step)` tokens, with `t_step` its own decode step time at batch size one. This
keeps demotion decisions integer-exact, so fast-forward stops exactly at the next demotion. The KV of
a preempted request stays on the GPU (`keep_kv: true`, FastServe's default while memory lasts) and is
evicted under memory pressure by `kv_cache.preemption` (swap to host or recompute, both priced), or is
evicted at once with `keep_kv: false`. FastServe's exact quanta are not published; these defaults
are choices, and all are parameters.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from policies.ranked import RankedConfig, RankedScheduler
from sim.core.batch import UNBOUNDED, BatchPlan, BatchScheduler, InstanceView
from sim.core.registry import SCHEDULERS
from sim.core.request import Request
from sim.costmodel.models import CostModel


class MLFQConfig(RankedConfig):
    """Skip-join MLFQ with geometrically growing quanta."""

    kind: Literal["mlfq"] = "mlfq"
    num_queues: int = Field(default=8, ge=1)
    base_quantum_s: float = Field(default=0.02, gt=0, description="quantum of the highest queue")
    quantum_ratio: float = Field(default=2.0, ge=1, description="each queue's quantum over the one above")
    skip_join: bool = Field(default=True, description="join the first queue whose quantum covers the prefill")
    keep_kv: bool = Field(default=True, description="preempted requests keep their KV while memory allows")


class _Level:
    """A request's place in the MLFQ."""

    __slots__ = ("entered", "gen0", "level", "t_step")

    def __init__(self, level: int, entered: int, gen0: int, t_step: float) -> None:
        self.level = level
        self.entered = entered  # order of entry into this level (FIFO within a level)
        self.gen0 = gen0  # tokens generated when it entered this level
        self.t_step = t_step


class MLFQ(RankedScheduler):
    preemptive = True

    def __init__(self, cfg: MLFQConfig, cost: CostModel) -> None:
        super().__init__(cfg)
        self.cost = cost
        self.keep_kv = cfg.keep_kv
        self.skip_join = cfg.skip_join
        self.last = cfg.num_queues - 1
        self.quanta = [cfg.base_quantum_s * cfg.quantum_ratio**i for i in range(cfg.num_queues)]
        self._seq = 0

    def _state(self, req: Request) -> _Level:
        st = req.sched
        if not isinstance(st, _Level):
            level = 0
            if self.skip_join:
                t_prefill = self.cost.iteration([(req.prompt, 0)], 0, 0)
                level = next((i for i, q in enumerate(self.quanta) if q >= t_prefill), self.last)
            t_step = float(self.cost.decode_run(1, np.array([req.prompt + 1]))[0])
            self._seq += 1
            st = _Level(level, self._seq, req.generated, max(t_step, 1e-12))
            req.sched = st
        return st

    def quantum_tokens(self, st: _Level) -> int:
        return max(1, math.ceil(self.quanta[st.level] / st.t_step))

    def key(self, req: Request) -> tuple[int, int]:
        st = self._state(req)
        return (st.level, st.entered)

    def observe(self, inst: InstanceView, now: float) -> None:
        for r in inst.running:
            st = self._state(r)
            while st.level < self.last and r.generated - st.gen0 >= self.quantum_tokens(st):
                st.gen0 += self.quantum_tokens(st)
                st.level += 1
                self._seq += 1
                st.entered = self._seq

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        h = UNBOUNDED
        for r in plan.decode:
            st: Any = r.sched
            if st.level < self.last:
                h = min(h, st.gen0 + self.quantum_tokens(st) - r.generated)
        return max(1, h)


@SCHEDULERS.register("mlfq", MLFQConfig, stateful=True)
def _mlfq(cfg: MLFQConfig, *, cost: CostModel, **_: object) -> BatchScheduler:
    """FastServe skip-join MLFQ, token-level preemption"""
    return MLFQ(cfg, cost)
