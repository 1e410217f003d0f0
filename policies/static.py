"""Request-level (static) batching, as analysed in "A Queueing Theoretic Perspective on Low-Latency LLM
Inference with Variable Token Length" (Yang, Jiao & Xu 2024, §IV; Inoue 2021).

A batch is formed only when the server is free and runs until its longest request has finished: a
request that finishes early frees its KV blocks, but nobody joins until the whole batch is done.

- `dynamic`: when the server frees, take everything waiting (at most `batch_size`); an idle server
  starts a batch with the first arrival.
- `fixed`: wait until `batch_size` requests are waiting, then serve exactly that many (`max_wait_s`
  optionally starts a short batch once the oldest has waited that long; when the workload has no more
  arrivals the remainder is served).
- `elastic`: dynamic's batch formation with no intra-batch waiting — each response is delivered when
  its own last token is generated.

With `dynamic` and `fixed` a response is delivered when its batch ends (intra-batch waiting, the
model in the paper: a request's sojourn includes its batch's longest output), so `completion_s` is the
batch end. `release` overrides this choice. Prompts of a batch are prefilled in one iteration.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from policies.continuous import plan_decodes
from sim.core.batch import UNBOUNDED, BatchPlan, BatchScheduler, InstanceView
from sim.core.registry import SCHEDULERS


class StaticConfig(BaseModel):
    """Request-level batching: dynamic, fixed or elastic."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["static"] = "static"
    mode: Literal["dynamic", "fixed", "elastic"] = "dynamic"
    batch_size: int = Field(default=32, ge=1, description="fixed: exactly this many; dynamic/elastic: at most")
    max_wait_s: float | None = Field(
        default=None, gt=0, description="fixed: start a short batch once the oldest request waited this long"
    )
    release: Literal["batch", "own"] | None = Field(
        default=None, description="deliver responses at the batch end or at their own last token (default by mode)"
    )


class Static:
    def __init__(self, cfg: StaticConfig) -> None:
        self.mode = cfg.mode
        self.b = cfg.batch_size
        self.max_wait = cfg.max_wait_s
        release = cfg.release or ("own" if cfg.mode == "elastic" else "batch")
        self.hold = release == "batch"

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        plan = BatchPlan()
        if inst.running:  # the batch in progress: everyone still in it decodes, nobody joins
            plan_decodes(inst, list(inst.running), plan)
            return plan
        waiting = inst.waiting
        if self.mode == "fixed" and len(waiting) < self.b and not inst.arrivals_closed:
            if self.max_wait is None:
                return BatchPlan(wait_until=math.inf)
            wake = min(r.arrival for r in waiting) + self.max_wait
            if now < wake:
                return BatchPlan(wait_until=wake)
        while waiting and len(plan.prefill) + len(plan.decode) < self.b:
            req = waiting[0]
            if not inst.can_admit(req):
                break
            inst.admit(req)
            req.hold = self.hold
            if req.in_prefill:
                plan.prefill.append((req, req.prefill_target - req.prefill_done))
            elif inst.reserve_decode_slot(req):  # swapped back in: it rejoins decoding
                plan.decode.append(req)
            else:
                inst.preempt(req)
                plan.preempted += 1
                break
        return plan

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        return UNBOUNDED  # decode-only plans are the batch in progress, which only completions change


@SCHEDULERS.register("static", StaticConfig)
def _static(cfg: StaticConfig, **_: object) -> BatchScheduler:
    """request-level batching: dynamic, fixed or elastic (queueing paper)"""
    return Static(cfg)
