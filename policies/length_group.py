"""Sequence scheduling by predicted length (Zheng et al., "Response Length Perception and Sequence
Scheduling", NeurIPS 2023).

Requests are grouped by predicted output length into buckets `bucket_tokens` wide (50 in the paper)
and served as request-level batches of one bucket at a time, so batch members finish at about the same
time and little compute is spent on finished slots. A batch may hold at most `max_batch_size`
requests and `max_batch_tokens` tokens of prompt plus predicted output, which makes batches of short
buckets larger ("variable batch size"). Each batch is cut at its largest predicted length: a member
still unfinished then has failed; its KV is dropped (or swapped) and it is queued again with no limit
("failure collection"). Failed requests form their own batches.

Differences from the paper, by design: a failed request keeps the tokens it already generated (its
prompt and those tokens are recomputed, and it continues), so every output token is generated exactly
once; and batches are formed online, for the bucket of the oldest waiting request (`order: fifo`) or
the shortest bucket waiting (`order: shortest`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from policies.continuous import plan_decodes
from sim.core.batch import UNBOUNDED, BatchPlan, BatchScheduler, InstanceView
from sim.core.registry import SCHEDULERS
from sim.core.request import Request

_FAILED = 1 << 40  # bucket of failed requests: served without a cap


class LengthGroupConfig(BaseModel):
    """Batches of similar predicted length, cut at the prediction; failures recomputed."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["length_group"] = "length_group"
    needs_predictor: ClassVar[bool] = True
    bucket_tokens: int = Field(default=50, ge=1, description="width of a predicted-length group")
    max_batch_size: int = Field(default=256, ge=1)
    max_batch_tokens: int = Field(
        default=1 << 17, ge=1, description="Σ (prompt + predicted output) per batch: short buckets batch more"
    )
    order: Literal["fifo", "shortest"] = Field(
        default="fifo", description="next group: the oldest waiting request's, or the shortest bucket"
    )


class _Group:
    __slots__ = ("cap", "failed")

    def __init__(self) -> None:
        self.cap: int | None = None  # the batch's predicted length: stop here
        self.failed = False


class LengthGroup:
    def __init__(self, cfg: LengthGroupConfig) -> None:
        self.width = cfg.bucket_tokens
        self.max_size = cfg.max_batch_size
        self.max_tokens = cfg.max_batch_tokens
        self.order = cfg.order

    @staticmethod
    def _st(req: Request) -> _Group:
        st = req.sched
        if not isinstance(st, _Group):
            st = _Group()
            req.sched = st
        return st

    def bucket(self, req: Request) -> int:
        return _FAILED if self._st(req).failed else (max(1, req.predicted) - 1) // self.width

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        plan = BatchPlan()
        if inst.running:
            for r in list(inst.running):  # members that reached the batch's cap unfinished have failed
                st = self._st(r)
                if st.cap is not None and r.generated >= st.cap and not r.in_prefill:
                    st.failed, st.cap = True, None
                    inst.preempt(r)
                    plan.preempted += 1
            if inst.running:
                plan_decodes(inst, list(inst.running), plan)
                return plan
        self._form(inst, plan)
        return plan

    def _form(self, inst: InstanceView, plan: BatchPlan) -> None:
        waiting = list(inst.waiting)  # FIFO, failures (re-queued at the head) first
        if not waiting:
            return
        buckets = [self.bucket(r) for r in waiting]
        target = buckets[0] if self.order == "fifo" else min(buckets)
        members = [r for r, b in zip(waiting, buckets, strict=True) if b == target]
        capped = target != _FAILED
        admitted: list[Request] = []
        tokens = 0
        for req in members:
            if len(plan.prefill) + len(plan.decode) >= self.max_size:
                break
            size = req.prompt + (req.predicted if capped else req.generated)  # a failure's length is unknown
            if (plan.prefill or plan.decode) and tokens + size > self.max_tokens:
                break
            if not inst.can_admit(req):
                break
            tokens += size
            inst.admit(req)
            admitted.append(req)
            if req.in_prefill:
                plan.prefill.append((req, req.prefill_target - req.prefill_done))
            elif inst.reserve_decode_slot(req):  # swapped back in
                plan.decode.append(req)
            else:
                inst.preempt(req)
                admitted.pop()
                plan.preempted += 1
                break
        cap = max(r.predicted for r in admitted) if capped and admitted else None
        for r in admitted:
            self._st(r).cap = cap

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        h = UNBOUNDED
        for r in plan.decode:
            st: Any = r.sched
            if st.cap is not None:
                h = min(h, st.cap - r.generated)
        return max(1, h)


@SCHEDULERS.register("length_group", LengthGroupConfig, stateful=True)
def _length_group(cfg: LengthGroupConfig, **_: object) -> BatchScheduler:
    """batches of similar predicted length, failures recomputed"""
    return LengthGroup(cfg)
