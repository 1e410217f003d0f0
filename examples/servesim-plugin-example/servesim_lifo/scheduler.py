"""Last-come-first-served continuous batching: admit the newest waiting request first.

It uses only servesim's policy contract (`sim.core.batch`, `sim.core.request`): the instance view it plans
against and the plan it returns. Admission is prefill-first, whole prompts (like vLLM's), newest first;
otherwise every running request decodes one token, the newest giving up its memory when blocks run out.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sim.core.batch import UNBOUNDED, BatchPlan, BatchScheduler, InstanceView


class LIFOConfig(BaseModel):
    """The `scheduler:` section: `{kind: lifo, max_num_seqs: 8}`."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, as for the built-ins

    kind: Literal["lifo"] = "lifo"
    max_num_seqs: int = Field(default=256, ge=1, description="most requests running at once")


class LIFO:
    """Newest waiting request first; running requests are never displaced by newer ones."""

    def __init__(self, cfg: LIFOConfig) -> None:
        self.max_seqs = cfg.max_num_seqs

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        plan = BatchPlan()
        waiting, running = inst.waiting, inst.running
        while waiting and len(running) < self.max_seqs:
            req = waiting[-1]  # the newest
            if not inst.can_admit(req):
                break
            inst.admit(req)
            if req.in_prefill:  # new, or preempted and recomputing (prompt + tokens generated so far)
                plan.prefill.append((req, req.prefill_target - req.prefill_done))
        if plan.prefill:
            return plan
        decoding = list(inst.decoding())  # a copy: this loop takes requests off it
        while decoding:
            req = decoding.pop(0)
            while not inst.reserve_decode_slot(req):
                victim = decoding.pop() if decoding else req  # the newest gives its blocks back
                inst.preempt(victim)
                plan.preempted += 1
                if victim is req:
                    break
            else:
                plan.decode.append(req)
        return plan

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        # a decode-only plan changes only when a request arrives, completes or runs out of blocks, and the
        # engine watches for all three itself
        return UNBOUNDED


def build_lifo(cfg: LIFOConfig, **_: object) -> BatchScheduler:
    """last come, first served: newest waiting request first, whole prompts"""
    return LIFO(cfg)
