"""Rank-ordered iteration-level scheduling: the engine shared by sjf, srpt, ltr, priority and mlfq.

Every iteration the requests (resident ones and the head of the waiting queue) are taken in the
policy's rank order (`key`, lower first) and selected until `max_num_seqs` or the token budget is
reached, as vllm-ltr's `_general_schedule` does. Then memory is found for them in rank order:

- a selected resident request needs its next-token slot; when the pool is empty, the worst-ranked
  resident behind it is preempted (recompute or swap, `kv_cache.preemption`), else itself;
- a selected waiting request is admitted if it fits above the watermark; a *preemptive* policy may
  evict resident requests ranked behind it (worst first) when that makes it fit, a non-preemptive
  one never does. The first waiting request that cannot be admitted stops admission (no overtaking).

Resident requests that are not selected keep their KV on the GPU (vllm-ltr and FastServe's "keep"),
unless the policy drops it (`keep_kv = False`). Prefills may be chunked to the token budget and run in
the same iteration as decodes (Orca-style mixed batches).

Fast-forward: with decode-only plans nothing in this procedure changes while only decodes run (free
memory only shrinks, selected requests never lose rank to unselected ones under static keys), so the
base horizon is unbounded; policies whose keys move with progress (MLFQ quanta, LTR starvation)
bound it by the number of steps until their next key change.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from policies.queues import RankedQueue
from sim.core.batch import UNBOUNDED, BatchPlan, InstanceView
from sim.core.request import Request


class RankedConfig(BaseModel):
    """Knobs every rank-ordered scheduler shares."""

    model_config = ConfigDict(extra="forbid")

    max_num_seqs: int = Field(default=256, ge=1, description="most requests in one iteration's batch")
    max_num_batched_tokens: int = Field(
        default=8192, ge=1, description="tokens per iteration: decodes + prefill chunks"
    )


class RankedScheduler:
    """Select by rank, then reserve memory by rank. Subclasses define `key` and may override hooks."""

    preemptive = True  # may a better-ranked waiting request evict a resident one?
    keep_kv = True  # do unselected resident requests keep their KV?

    def __init__(self, cfg: RankedConfig) -> None:
        self.max_seqs = cfg.max_num_seqs
        self.budget = cfg.max_num_batched_tokens

    # -- the policy ----------------------------------------------------------------------------------
    def key(self, req: Request) -> Any:
        """Rank of a request; lower is served first. Must be stable while the request waits."""
        raise NotImplementedError

    def observe(self, inst: InstanceView, now: float) -> None:
        """Hook before each plan: update progress-dependent state (demotions, starvation counters)."""

    def planned(self, inst: InstanceView, plan: BatchPlan) -> None:
        """Hook after each plan."""

    def on_push(self, req: Request) -> None:
        """Hook: `req` enters the waiting queue (arrival or preemption)."""

    def waiting_queue(self) -> RankedQueue:
        return RankedQueue(self.key, self.on_push)

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        return UNBOUNDED

    # -- planning ------------------------------------------------------------------------------------
    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        """Plan by rank; if that plans nothing while residents are stuck for memory (the best-ranked requests
        wait and cannot be admitted, the residents behind them cannot get a next-token slot), preempt the
        worst-ranked resident and plan again, so the instance always makes progress."""
        plan = self._plan(inst, now)
        preempted = plan.preempted
        while plan.empty and plan.wait_until is None and inst.running and inst.free_blocks == 0:
            victim = max(inst.running, key=self.key) if self.preemptive else inst.running[-1]
            inst.preempt(victim)
            preempted += 1
            plan = self._plan(inst, now)
            preempted += plan.preempted
        plan.preempted = preempted
        return plan

    def _plan(self, inst: InstanceView, now: float) -> BatchPlan:
        self.observe(inst, now)
        plan = BatchPlan()
        running = list(inst.running)
        if self.preemptive:
            running.sort(key=self.key)
        selected = self._select(inst, running)
        evicted: set[int] = set()
        self._reserve(inst, selected, running, evicted, plan)
        chosen = {id(r) for r, _ in selected}
        self._fill_seats(inst, running, chosen, evicted, plan)
        # 4. unselected resident requests keep their KV, unless the policy drops it
        if not self.keep_kv:
            for r in running:
                if id(r) not in chosen and id(r) not in evicted:
                    self._evict(inst, r, evicted, plan)
        self.planned(inst, plan)
        return plan

    def _select(self, inst: InstanceView, running: list[Request]) -> list[tuple[Request, int]]:
        """1. Select by rank (residents and the waiting queue merged) within the sequence cap and the token
        budget: (request, tokens this iteration) pairs."""
        waiting: RankedQueue = inst.waiting  # type: ignore[assignment]  # this family's queue (waiting_queue)
        cands = waiting.ordered()
        order = heapq.merge(running, cands, key=self.key) if self.preemptive else itertools.chain(running, cands)
        selected: list[tuple[Request, int]] = []
        left = self.budget
        for req in order:
            if len(selected) >= self.max_seqs:
                break
            n = req.prefill_target - req.prefill_done if req.in_prefill else 1
            if req.in_prefill:
                n = min(n, left)
            if n <= 0 or n > left:
                break
            selected.append((req, n))
            left -= n
        waiting.put_back()
        return selected

    def _reserve(
        self,
        inst: InstanceView,
        selected: list[tuple[Request, int]],
        running: list[Request],
        evicted: set[int],
        plan: BatchPlan,
    ) -> None:
        """2. Memory, in rank order; victims are resident requests ranked behind, worst first."""
        resident = {id(r) for r in running}
        victims = running  # in rank order (preemptive) or admission order (non-preemptive)
        vpos = {id(r): i for i, r in enumerate(victims)}
        tail = len(victims) - 1
        admitting = True
        for req, n in selected:
            rid = id(req)
            if rid in evicted:
                continue
            if rid in resident:
                if req.in_prefill:  # blocks for the whole prefill were taken at admission
                    plan.prefill.append((req, n))
                    continue
                ok = True
                while not inst.reserve_decode_slot(req):
                    tail = self._skip_evicted(victims, tail, evicted)
                    if tail > vpos[rid]:
                        self._evict(inst, victims[tail], evicted, plan)
                    else:
                        self._evict(inst, req, evicted, plan)
                        ok = False
                        break
                if ok:
                    plan.decode.append(req)
                continue
            if not admitting:
                continue
            if not inst.can_admit(req):
                tail = self._skip_evicted(victims, tail, evicted)
                if not (self.preemptive and self._make_room(inst, req, victims, tail, evicted, plan)):
                    admitting = False
                    continue
                tail = self._skip_evicted(victims, tail, evicted)
                if not inst.can_admit(req):  # its prefix hits were held only by the evicted: it needs them back
                    admitting = False
                    continue
            inst.admit(req)
            if req.in_prefill:
                plan.prefill.append((req, n))
            elif inst.reserve_decode_slot(req):  # swapped back in, ready to decode
                plan.decode.append(req)
            else:
                self._evict(inst, req, evicted, plan)

    def _fill_seats(
        self, inst: InstanceView, running: list[Request], chosen: set[int], evicted: set[int], plan: BatchPlan
    ) -> None:
        """3. Seats left by selected requests that could not be admitted go to resident decodes, in rank order
        (each one taken is added to `chosen`)."""
        seats = self.max_seqs - len(plan.decode) - len(plan.prefill)
        left = self.budget - len(plan.decode) - sum(n for _, n in plan.prefill)
        if seats <= 0 or left <= 0:
            return
        for r in running:
            if seats <= 0 or left <= 0:
                break
            rid = id(r)
            if rid in chosen or rid in evicted or r.in_prefill:
                continue
            if not inst.reserve_decode_slot(r):
                break
            plan.decode.append(r)
            chosen.add(rid)
            seats -= 1
            left -= 1

    # -- helpers -------------------------------------------------------------------------------------
    @staticmethod
    def _skip_evicted(victims: list[Request], tail: int, evicted: set[int]) -> int:
        while tail >= 0 and id(victims[tail]) in evicted:
            tail -= 1
        return tail

    @staticmethod
    def _evict(inst: InstanceView, req: Request, evicted: set[int], plan: BatchPlan) -> None:
        inst.preempt(req)
        evicted.add(id(req))
        plan.preempted += 1

    def _make_room(
        self,
        inst: InstanceView,
        req: Request,
        victims: list[Request],
        tail: int,
        evicted: set[int],
        plan: BatchPlan,
    ) -> bool:
        """Evict resident requests ranked behind `req`, worst first, if that lets it in; else touch nothing."""
        key = self.key
        kr = key(req)
        need = inst.admit_blocks(req) + inst.watermark_blocks - inst.free_blocks
        freeable = getattr(inst, "freeable_blocks", None)
        chosen: list[Request] = []
        i = tail
        while need > 0 and i >= 0:
            v = victims[i]
            i -= 1
            gain = freeable(v) if freeable is not None else v.blocks
            if id(v) in evicted or gain == 0:
                continue
            if not key(v) > kr:
                break
            chosen.append(v)
            need -= gain
        if need > 0:
            return False
        for v in chosen:
            self._evict(inst, v, evicted, plan)
        return True
