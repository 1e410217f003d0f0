"""Priority classes with preemption of best-effort work (QLLM-style, at iteration granularity).

Requests carry the priority of their traffic class (`workload.classes`, lower value first). Every
iteration the batch is filled by (priority, arrival): a latency-sensitive arrival takes a batch seat
from a best-effort request at once and, if KV memory is short, evicts best-effort requests (worst
first: lowest class, latest arrival) by recompute or swap per `kv_cache.preemption`. Preempted
best-effort requests keep their KV on the GPU while memory allows (`keep_kv`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from policies.ranked import RankedConfig, RankedScheduler
from sim.core.batch import BatchScheduler
from sim.core.registry import SCHEDULERS
from sim.core.request import Request


class PriorityConfig(RankedConfig):
    """Serve by class priority, then arrival; preempt lower classes."""

    kind: Literal["priority"] = "priority"
    preemptive: bool = Field(default=True, description="may a higher class evict a running lower one")
    keep_kv: bool = Field(default=True, description="preempted requests keep their KV while memory allows")


class Priority(RankedScheduler):
    def __init__(self, cfg: PriorityConfig) -> None:
        super().__init__(cfg)
        self.preemptive = cfg.preemptive
        self.keep_kv = cfg.keep_kv

    def key(self, req: Request) -> tuple[int, float, int]:
        return (req.priority, req.arrival, req.id)


@SCHEDULERS.register("priority", PriorityConfig)
def _priority(cfg: PriorityConfig, **_: object) -> BatchScheduler:
    """class priority first, preempting best-effort work"""
    return Priority(cfg)
