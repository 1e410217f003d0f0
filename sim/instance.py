"""One model replica: a SimPy process running iterations of continuous batching.

Each iteration the batch scheduler turns (waiting, running, KV state) into a `BatchPlan`, the cost model
prices it, the process sleeps that long, then tokens advance, requests finish and blocks free.

Decode fast-forward: when the plan is decode-only and the policy says its decision holds, the instance
prices the next k steps at once (k = until the first completion or the first step that would run out of
KV blocks) and sleeps once. An arrival during the run truncates it at the end of the iteration in
flight (via `simpy.Interrupt`), so the next plan sees the same state as step-by-step would. Step-by-step
mode runs the very same code with k = 1; clocks are accumulated with the same float additions, so both
modes give bit-identical timestamps.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import numpy as np
import simpy

from sim.batch import BatchPlan, BatchScheduler
from sim.costmodel import CostModel
from sim.kvcache import BlockPool, KVCapacity
from sim.recorder import RequestLog
from sim.request import Request


class _Run:
    """A decode-only run in flight: its requests, absolute step end times and how many steps stand."""

    __slots__ = ("decode", "k", "times")

    def __init__(self, decode: list[Request], times: np.ndarray) -> None:
        self.decode = decode
        self.times = times
        self.k = len(times)


class Instance:
    """A replica on `tp` GPUs. Implements `sim.batch.InstanceView` for its scheduler."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        scheduler: BatchScheduler,
        cost: CostModel,
        capacity: KVCapacity,
        log: RequestLog,
        *,
        max_context: int,
        watermark: float,
        fast_forward: bool,
    ) -> None:
        self.env = env
        self.index = index
        self.scheduler = scheduler
        self.cost = cost
        self.log = log
        self.max_context = max_context
        self.fast_forward = fast_forward
        self.block_size = capacity.block_size
        self.num_blocks = capacity.num_blocks
        self.watermark_blocks = int(watermark * capacity.num_blocks)
        self.pool = BlockPool(capacity.num_blocks)
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.t = 0.0  # the instance's exact clock (env.now may differ by rounding)
        self.iterations = 0
        self.busy_s = 0.0
        self.tokens_out = 0
        self._idle: simpy.Event | None = None
        self._run: _Run | None = None
        self.process = env.process(self._loop())

    # -- InstanceView ------------------------------------------------------------------------------
    @property
    def free_blocks(self) -> int:
        return self.pool.free

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def can_admit(self, req: Request) -> bool:
        return self.pool.free - self.blocks_for(req.prefill_target) >= self.watermark_blocks

    def admit(self, req: Request) -> None:
        head = self.waiting.popleft()
        assert head is req, "admit() takes the head of the waiting queue"
        need = self.blocks_for(req.prefill_target)
        self.pool.take(need)
        req.blocks = need
        if math.isnan(req.first_scheduled):
            req.first_scheduled = self.t
        self.running.append(req)

    def reserve_decode_slot(self, req: Request) -> bool:
        if req.kv_tokens + 1 <= req.blocks * self.block_size:
            return True
        if self.pool.free == 0:
            return False
        self.pool.take(1)
        req.blocks += 1
        return True

    def reserve_decode_slots(self, reqs: list[Request]) -> bool:
        if len(reqs) > self.pool.free:
            return False
        bs, taken = self.block_size, 0
        for r in reqs:
            if r.kv_tokens >= r.blocks * bs:
                r.blocks += 1
                taken += 1
        self.pool.take(taken)
        return True

    def preempt(self, req: Request) -> None:
        self.running.remove(req)
        self.pool.give(req.blocks)
        req.blocks = 0
        req.kv_tokens = 0
        req.prefill_done = 0
        req.prefill_target = req.prompt + req.generated
        req.preemptions += 1
        self.waiting.appendleft(req)

    # -- router view -----------------------------------------------------------------------------------
    @property
    def num_requests(self) -> int:
        return len(self.waiting) + len(self.running)

    def kv_used_blocks(self) -> int:
        """Blocks in use now, counting the steps of a fast-forward run already behind us."""
        used = self.pool.used
        run = self._run
        if run is not None:
            done = bisect.bisect_right(run.times, self.env.now, 0, run.k)
            if done:
                used += sum(max(0, self.blocks_for(r.kv_tokens + done) - r.blocks) for r in run.decode)
        return used

    # -- arrivals ------------------------------------------------------------------------------------
    def enqueue(self, req: Request) -> None:
        """Accept a routed request, or reject it when it can never fit this instance."""
        req.instance = self.index
        total = req.prompt + req.output
        if total > self.max_context:
            self.log.reject(req, "exceeds_context")
            return
        if self.blocks_for(total) > self.num_blocks - self.watermark_blocks:
            self.log.reject(req, "exceeds_kv_cache")
            return
        self.waiting.append(req)
        if self._idle is not None:
            idle, self._idle = self._idle, None
            idle.succeed()
        elif self._run is not None:
            self._truncate(self.env.now)

    def _truncate(self, now: float) -> None:
        """Cut the run in flight at the end of the step running at `now`, so the next plan sees the arrival."""
        run = self._run
        assert run is not None
        j = bisect.bisect_left(run.times, now, 0, run.k)
        if j + 1 < run.k:
            run.k = j + 1
            self.process.interrupt()

    # -- the loop ------------------------------------------------------------------------------------
    def _loop(self):  # type: ignore[no-untyped-def]
        env = self.env
        while True:
            if not self.waiting and not self.running:
                self._idle = env.event()
                yield self._idle
                self.t = env.now
                continue
            plan = self.scheduler.schedule(self, self.t)
            if plan.empty:
                raise RuntimeError(
                    f"instance {self.index}: scheduler planned nothing with {len(self.waiting)} waiting "
                    f"and {len(self.running)} running (free blocks {self.pool.free})"
                )
            if plan.prefill:
                yield from self._mixed(plan)
            else:
                yield from self._decode(plan)

    def _sleep_until(self, t_end: float):  # type: ignore[no-untyped-def]
        yield self.env.timeout(max(0.0, t_end - self.env.now))

    def _mixed(self, plan: BatchPlan):  # type: ignore[no-untyped-def]
        """An iteration with prefill work (and, for chunked schedulers, decodes)."""
        decode = plan.decode
        chunks = [(n, r.prefill_done) for r, n in plan.prefill]
        ctx = sum(r.kv_tokens for r in decode) + len(decode)
        dt = self.cost.iteration(chunks, len(decode), ctx)
        t_end = self.t + dt
        yield from self._sleep_until(t_end)
        self.t = t_end
        self.iterations += 1
        self.busy_s += dt
        itl = self.log.itl
        finished = []
        for req, n in plan.prefill:
            req.prefill_done += n
            req.kv_tokens += n
            if req.prefill_done == req.prefill_target:
                if req.generated == 0:
                    req.first_token = t_end
                else:
                    itl.add_one(t_end - req.last_token)
                req.generated += 1
                req.last_token = t_end
                if req.generated == req.output:
                    finished.append(req)
        for req in decode:
            itl.add_one(t_end - req.last_token)
            req.generated += 1
            req.kv_tokens += 1
            req.last_token = t_end
            if req.generated == req.output:
                finished.append(req)
        self.tokens_out += len(decode) + sum(1 for r, _ in plan.prefill if not r.in_prefill)
        self._finish(finished)

    def _decode(self, plan: BatchPlan):  # type: ignore[no-untyped-def]
        """k decode-only steps (k = 1 unless fast-forwarding); step 1's slots were reserved by the plan."""
        decode = plan.decode
        n = len(decode)
        k = 1
        ctx0 = 0
        k_max = 1 << 62
        for r in decode:  # one pass: context sum and steps to the first completion
            ctx0 += r.kv_tokens
            left = r.output - r.generated
            if left < k_max:
                k_max = left
        if self.fast_forward and plan.preempted == 0 and k_max > 1:
            k = min(k_max, self.scheduler.decision_horizon(self, plan))
            if n * (-(-k // self.block_size)) > self.pool.free:  # blocks might run short within k steps
                k = self._block_limit(decode, k)
        steps = np.arange(1, k + 1, dtype=np.int64)
        durations = self.cost.decode_run(n, ctx0 + n * steps)
        times = np.cumsum(np.concatenate(([self.t], durations)))[1:]
        run = _Run(decode, times)
        if k > 1:
            self._run = run
            try:
                yield from self._sleep_until(float(times[-1]))
            except simpy.Interrupt:
                while True:  # finish the step in flight; later arrivals cannot cut further back
                    try:
                        yield from self._sleep_until(float(times[run.k - 1]))
                        break
                    except simpy.Interrupt:
                        continue
            self._run = None
        else:
            yield from self._sleep_until(float(times[0]))
        k = run.k
        t_end = float(times[k - 1])
        self.t = t_end
        self.iterations += k
        self.busy_s += float(durations[:k].sum())
        self.tokens_out += n * k
        bs = self.block_size
        first = float(times[0])
        finished = []
        last_seen: dict[float, int] = {}  # requests' previous token times: few distinct values per run
        new_blocks = 0
        for req in decode:
            lt = req.last_token
            last_seen[lt] = last_seen.get(lt, 0) + 1
            g = req.generated + k
            req.generated = g
            kv = req.kv_tokens + k
            req.kv_tokens = kv
            need = -(-kv // bs) - req.blocks
            if need > 0:
                new_blocks += need
                req.blocks += need
            req.last_token = t_end
            if g == req.output:
                finished.append(req)
        self.pool.take(new_blocks)
        itl = self.log.itl
        for lt, cnt in last_seen.items():
            itl.add_one(first - lt, cnt)
        if k > 1:
            itl.add(times[1:k] - times[: k - 1], n)
        self._finish(finished)

    def _block_limit(self, decode: list[Request], k: int) -> int:
        """Largest number of steps (≤ k) whose new KV blocks fit in the free pool."""
        bs = self.block_size
        spare = np.fromiter((r.blocks * bs - r.kv_tokens for r in decode), dtype=np.int64, count=len(decode))
        # a request with e = spare slots needs a new block at steps e+1, e+1+bs, ...; step 1 is reserved
        counts = np.bincount(spare, minlength=bs + 1)
        s = np.arange(1, k + 1)
        need = np.where(s >= 2, counts[(s - 2) % bs + 1], 0)
        over = np.flatnonzero(np.cumsum(need) > self.pool.free)
        return int(over[0]) if over.size else k  # steps before the first shortfall (index = s - 1)

    def _finish(self, finished: list[Request]) -> None:
        if not finished:
            return
        if len(finished) > 1:
            gone = set(map(id, finished))
            self.running = [r for r in self.running if id(r) not in gone]
        else:
            self.running.remove(finished[0])
        for req in finished:
            req.completion = self.t
            self.pool.give(req.blocks)
            req.blocks = 0
            self.log.complete(req)
