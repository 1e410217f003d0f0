"""Learning to Rank (Fu et al., "Efficient LLM Scheduling by Learning to Rank", NeurIPS 2024).

Requests are ranked by a predictor's score (here the scenario predictor's length; a `rank` predictor
sets its Kendall's tau with the true length) and every iteration the batch is refilled from the top
of that ranking over running and waiting requests alike, as in the authors' vllm-ltr
`_general_schedule`: an approximation of SRPT that needs only the *order* of lengths right.

Starvation guard (vllm-ltr's `starv`/`period`): a request left out of the batch for
`starvation_iters` consecutive iterations is promoted above every unpromoted request for the next
`promote_iters` iterations in which it runs, then demoted back to its score. Counters are in
iterations, so fast-forward stops exactly at the next promotion or demotion. Defaults (200, 10) are
vllm-ltr's fairness runs (`starv200-period10`), which swap preempted KV to host memory.
"""

from __future__ import annotations

import heapq
from typing import Any, ClassVar, Literal, cast

from pydantic import Field

from policies.queues import RankedQueue
from policies.ranked import RankedConfig, RankedScheduler
from sim.core.batch import UNBOUNDED, BatchPlan, BatchScheduler, InstanceView
from sim.core.registry import SCHEDULERS
from sim.core.request import Request


class LTRConfig(RankedConfig):
    """Rank by predicted length (a learned ranking), with the starvation guard."""

    kind: Literal["ltr"] = "ltr"
    needs_predictor: ClassVar[bool] = True
    preemptive: bool = Field(default=True, description="re-rank running requests too (vllm-ltr does)")
    starvation_iters: int | None = Field(
        default=200, ge=1, description="promote a request left out this many iterations; none = no guard"
    )
    promote_iters: int = Field(default=10, ge=1, description="iterations a promoted request keeps its promotion")


class _Starve:
    __slots__ = ("mark", "runs")

    def __init__(self) -> None:
        self.mark = -1  # iteration count at which the request was last in a batch (or first seen)
        self.runs = 0  # promoted iterations left (> 0 = promoted)


def _st(r: Request) -> _Starve:
    """The starvation state LTR keeps on each request it has seen (`Request.sched` is untyped for policies)."""
    return cast(_Starve, r.sched)


class LTR(RankedScheduler):
    def __init__(self, cfg: LTRConfig) -> None:
        super().__init__(cfg)
        self.preemptive = cfg.preemptive
        self.starv = cfg.starvation_iters
        self.period = cfg.promote_iters
        self._new: list[Request] = []  # first seen since the last plan (their mark is set at the next one)
        self._marks: list[tuple[int, int, Request]] = []  # waiting requests by mark (lazy)
        self._last: list[Request] = []  # the previous plan's batch
        self._iter = 0
        self._queue: RankedQueue | None = None

    def _st(self, req: Request) -> _Starve:
        st = req.sched
        if not isinstance(st, _Starve):
            st = _Starve()
            req.sched = st
            self._new.append(req)
        return st

    def key(self, req: Request) -> tuple[int, int, float, int]:
        st = self._st(req)
        return (0 if st.runs > 0 else 1, req.predicted, req.arrival, req.id)

    def waiting_queue(self) -> RankedQueue:
        self._queue = RankedQueue(self.key, self.on_push)
        return self._queue

    def on_push(self, req: Request) -> None:
        st = self._st(req)
        if self.starv is not None and st.mark >= 0:
            heapq.heappush(self._marks, (st.mark, req.id, req))

    def observe(self, inst: InstanceView, now: float) -> None:
        it = inst.iterations
        steps = it - self._iter
        for r in self._last:  # in the batch for the `steps` iterations since the last plan
            st: Any = r.sched
            st.mark = it
            if st.runs > 0:
                st.runs = max(0, st.runs - steps)
        self._iter = it
        for r in self._new:
            _st(r).mark = it
            if self.starv is not None and r in inst.waiting:
                heapq.heappush(self._marks, (it, r.id, r))
        self._new.clear()
        if self.starv is None:
            return
        for r in inst.running:  # resident but possibly left out of the batch
            st = _st(r)
            if st.runs == 0 and it - st.mark >= self.starv:
                st.runs, st.mark = self.period, it
        marks, queue = self._marks, self._queue
        if queue is None:  # no waiting queue yet, so nothing was ever marked
            return
        while marks and it - marks[0][0] >= self.starv:
            mark, _, r = heapq.heappop(marks)
            st = _st(r)
            if r not in queue or st.mark != mark or st.runs > 0:
                continue  # stale: admitted, re-queued with a newer mark, or already promoted
            st.runs, st.mark = self.period, it
            queue.rekey(r)

    def planned(self, inst: InstanceView, plan: BatchPlan) -> None:
        self._last = plan.decode + [r for r, _ in plan.prefill]

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        if self.starv is None:
            return UNBOUNDED
        it = inst.iterations
        h = UNBOUNDED
        in_batch = {id(r) for r in plan.decode}
        for r in plan.decode:  # a promotion running out re-ranks a batch member
            if _st(r).runs > 0:
                h = min(h, _st(r).runs)
        for r in inst.running:  # a resident left out reaching the threshold is promoted
            if id(r) not in in_batch and _st(r).runs == 0:
                h = min(h, _st(r).mark + self.starv - it)
        marks, queue = self._marks, self._queue
        if queue is None:
            return max(1, h)
        while marks:  # the longest-waiting request's promotion (drop stale heads first)
            mark, _, r = marks[0]
            if r in queue and _st(r).mark == mark and _st(r).runs == 0:
                h = min(h, mark + self.starv - it)
                break
            heapq.heappop(marks)
        return max(1, h)


@SCHEDULERS.register("ltr", LTRConfig, stateful=True)
def _ltr(cfg: LTRConfig, **_: object) -> BatchScheduler:
    """learning-to-rank order by predicted length, starvation guard"""
    return LTR(cfg)
