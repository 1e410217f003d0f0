"""What an instance shows its batch scheduler and the cluster: KV admission, decode slots, preemption
(`sim.core.batch.InstanceView`), and the exact load routers and migration read during a fast-forward run.

`Instance` (`sim.core.instance`) inherits these; they live apart so the loop and its events read on their own.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import simpy

from sim.core.batch import BatchPlan
from sim.core.cohort import Cohort
from sim.core.collaborators import PrefixCaching
from sim.core.kvcache import BlockAllocator
from sim.core.native import mypyc_attr
from sim.core.request import Request
from sim.core.speculative import Speculation, reserve_lookahead
from sim.core.steps import DecodeRun, chunk_growth
from sim.core.swap import HostSwap
from sim.core.transfers import KVCopies


@mypyc_attr(
    allow_interpreted_subclasses=True
)  # compiled (`sim.core.native`): `Instance`'s base, which the tests extend
class BatchView:
    """KV blocks and the running batch as a scheduler, a router and a migration see them (state set up by
    `Instance.__init__`)."""

    env: simpy.Environment
    block_size: int
    watermark_blocks: int
    allocator: BlockAllocator | PrefixCaching
    prefix_cache: PrefixCaching | None
    host: HostSwap
    speculation: Speculation | None
    waiting: deque[Request]
    running: list[Request]
    prefilling: list[Request]
    lockstep: bool
    copies: KVCopies
    cohort: Cohort
    one_step: bool
    t: float
    run: DecodeRun | None

    # -- InstanceView ------------------------------------------------------------------------------
    @property
    def free_blocks(self) -> int:
        return self.allocator.free

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def admit_blocks(self, req: Request, tokens: int | None = None) -> int:
        """Blocks `req` takes from the free blocks on admission: its whole prefill pass, or with `tokens` its
        first chunk's (less prefix-cache hits that others hold), its swapped-out KV, or none when its KV was
        copied here already."""
        if req.kv_here:
            return 0
        if req.prefill_done < req.prefill_target:
            if self.prefix_cache is not None and req.kv_tokens == 0:
                return self.prefix_cache.admit_blocks(req, tokens)
            upto = req.prefill_target if tokens is None else min(req.prefill_target, req.kv_tokens + tokens)
            return self.blocks_for(upto)
        return self.blocks_for(req.kv_tokens)

    def freeable_blocks(self, req: Request) -> int:
        """Blocks preempting `req` would return to the free pool (with a prefix cache, its shared blocks no one
        else references count too: counting only `req.blocks` made eviction look useless and deadlocked)."""
        if req.prefix is not None and self.prefix_cache is not None:
            return self.prefix_cache.freeable(req)
        return req.blocks

    def can_admit(self, req: Request, tokens: int | None = None) -> bool:
        need = self.admit_blocks(req, tokens)
        return need == 0 or self.allocator.free - need >= self.watermark_blocks

    def admit(self, req: Request, tokens: int | None = None) -> None:
        if self.waiting[0] is req:
            self.waiting.popleft()
        else:
            self.waiting.remove(req)
        if req.kv_here:  # transferred or migrated: its blocks are held here already, nothing to copy
            req.kv_here = False
            self.one_step = True
            self.copies.admitted(req, self.t)
        elif self.prefix_cache is not None and req.kv_tokens == 0 and req.prefill_done < req.prefill_target:
            # cached prompt blocks are shared, the prefill starts after them; host-tier ones are copied back
            self.host.copy(self.prefix_cache.admit(req, tokens))
        else:
            need = self.admit_blocks(req, tokens)
            self.allocator.take(need)
            req.blocks = need
            if req.kv_tokens:  # swapped out earlier: copy its KV back in
                self.host.copy(self.blocks_for(req.kv_tokens))
        if math.isnan(req.first_scheduled):
            req.first_scheduled = self.t
        self.running.append(req)
        if req.prefill_done < req.prefill_target:
            self.prefilling.append(req)
        elif self.lockstep and not self.cohort.reserved:  # swapped back in after its prefill
            self.cohort.join(req)  # (while a step is reserved it joins once its own slot is: see `_adopt`)

    def reserve_prefill(self, req: Request, tokens: int) -> bool:
        """Take the blocks `req` needs to hold its KV after its next `tokens` prompt tokens; False (nothing
        taken) when the free blocks do not cover them. vLLM V1 allocates per scheduled chunk
        (`allocate_slots(request, num_new_tokens)`); `policies.vllm` admits with `admit(req, tokens)` and grows
        a running prefill with this."""
        need = -(-(req.prefill_done + tokens) // self.block_size) - (req.blocks + req.shared_blocks)
        if need <= 0:
            return True
        if need > self.allocator.free:
            return False
        self.allocator.take(need)
        req.blocks += need
        return True

    def decode_all(self, plan: BatchPlan) -> bool:
        co = self.cohort
        if not co.n or co.reserved or not self.lockstep or not self.reserve_cohort_step():
            return False
        plan.cohort = True
        plan.cohort_n = co.n
        return True

    def reserve_cohort_step(self) -> bool:
        """Take the blocks the cohort's next step needs (its members' next-token slots) and mark the step
        reserved; False (nothing taken) when they are not free. One reservation for a plan of every decoder and
        for a decode run going on without one (`steps._onward`), so both hold the same blocks."""
        co = self.cohort
        need = co.phase[-co.steps % co.block_size]  # `co.blocks(0, 1)`, inlined: once per plan
        if need:
            if need > self.allocator.free:
                return False
            self.allocator.take(need)
        co.reserved = True
        return True

    def decoding(self) -> list[Request]:
        if not self.lockstep:
            return [r for r in self.running if r.prefill_done >= r.prefill_target]
        members = [r for r in self.running if r.cohort_step >= 0]
        for r in members:
            self.cohort.sync(r)
        return members

    def sync_all(self) -> None:
        """Write every cohort member's true state into its fields (before reading them from outside)."""
        for r in self.running:
            if r.cohort_step >= 0:
                self.cohort.sync(r)

    def reserve_decode_slot(self, req: Request) -> bool:
        if self.speculation is not None:
            return self._reserve_lookahead([req])
        if req.kv_tokens + 1 <= (req.blocks + req.shared_blocks) * self.block_size:
            return True
        if self.allocator.free == 0:
            return False
        self.allocator.take(1)
        req.blocks += 1
        return True

    def reserve_decode_slots(self, reqs: list[Request]) -> bool:
        if self.speculation is not None:
            return self._reserve_lookahead(reqs)
        if len(reqs) > self.allocator.free:
            return False
        bs, taken = self.block_size, 0
        for r in reqs:
            if r.kv_tokens >= (r.blocks + r.shared_blocks) * bs:
                r.blocks += 1
                taken += 1
        self.allocator.take(taken)
        return True

    def _reserve_lookahead(self, reqs: list[Request]) -> bool:
        """Speculative decoding: blocks for k + 1 new tokens per sequence, all or none."""
        assert self.speculation is not None
        need = [reserve_lookahead(self.block_size, r, self.speculation.lookahead) for r in reqs]
        if sum(need) > self.allocator.free:
            return False
        for r, n in zip(reqs, need, strict=True):
            r.blocks += n
        self.allocator.take(sum(need))
        return True

    def preempt(self, req: Request) -> None:
        self.remove_running(req)
        self.give_blocks(req)
        if self.host.swap_preempted and req.kv_tokens:
            # KV goes to host memory (assumed large enough) and comes back on admission; progress is kept
            self.host.copy(self.blocks_for(req.kv_tokens))
        else:
            req.kv_tokens = 0
            req.prefill_done = 0
            req.prefill_target = req.prompt + req.generated
        req.preemptions += 1
        self.waiting.appendleft(req)

    # -- router and cluster view -------------------------------------------------------------------------
    @property
    def num_requests(self) -> int:
        return len(self.waiting) + len(self.running)

    def kv_used_blocks(self, before_now: bool = False) -> int:
        """Blocks in use now, counting the steps of a fast-forward run already behind us and the step in
        flight (step-by-step reserves a step's blocks when it starts, so the step running now counts). With
        `before_now`, as seen before the events of this instant run (the timeline's samples): a run's step that
        ends now is still in flight and the next one not begun, as when stepping, whose step event has not run."""
        used = self.allocator.used
        run = self.run
        if run is not None:
            behind = (bisect.bisect_left if before_now else bisect.bisect_right)(run.times, self.env.now, 0, run.k)
            done = min(behind + 1, run.k)
            if done:
                used += self.cohort.blocks(1, done - 1)
                if run.chunk is not None:  # a chunk run's prefill grows per chunk too (`steps.chunk_growth`)
                    req, q = run.chunk
                    used += chunk_growth(req, q, done - 1, self.block_size)
        return used

    def exact_kv(self, req: Request) -> int:
        """KV tokens a running request holds now (a cohort member's fields lag; steps behind a run count)."""
        kv = req.kv_tokens
        if req.cohort_step >= 0:
            kv += self.cohort.steps - req.cohort_step
            run = self.run
            if run is not None:
                kv += bisect.bisect_right(run.times, self.env.now, 0, run.k)
        return kv

    def remove_running(self, req: Request) -> None:
        """Take a running request out of the batch (its blocks stay held)."""
        if req.cohort_step >= 0:
            self.cohort.leave(req)
        elif req.prefill_done < req.prefill_target:
            self.prefilling.remove(req)
        self.running.remove(req)

    def give_blocks(self, req: Request) -> None:
        """Return a request's blocks (its shared prefix-cache blocks go back to the cache)."""
        if req.prefix is not None and self.prefix_cache is not None:
            self.prefix_cache.free_request(req)
        else:
            self.allocator.give(req.blocks)
        req.blocks = 0
