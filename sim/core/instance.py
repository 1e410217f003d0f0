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
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import simpy

from sim.core.batch import BatchPlan, BatchScheduler
from sim.core.cohort import Cohort
from sim.core.kvcache import BlockPool, KVCapacity
from sim.core.late import exact_delay
from sim.core.recorder import RequestLog
from sim.core.request import Request
from sim.costmodel.models import CostModel, decode_coeffs
from sim.output.perfetto import Tracer

if TYPE_CHECKING:
    from sim.cluster.prefix_cache import PrefixPool


class _Run:
    """A decode-only run in flight: its requests, absolute step end times and how many steps stand."""

    __slots__ = ("cohort", "decode", "k", "times")

    def __init__(self, decode: list[Request], times: np.ndarray | list[float], cohort: bool = False) -> None:
        self.decode = decode
        self.times = times
        self.k = len(times)
        self.cohort = cohort


class Instance:
    """A replica on `tp` GPUs. Implements `sim.core.batch.InstanceView` for its scheduler."""

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
        cohort: bool = True,
        preemption: str = "recompute",
        swap_block_s: float = 0.0,
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
        self.preemption = preemption  # "recompute" drops a preempted request's KV, "swap" moves it to host
        self.swap_block_s = swap_block_s  # seconds to move one KV block over the host link, one way
        make_queue = getattr(scheduler, "waiting_queue", None)  # a scheduler may keep waiting in its own order
        self.waiting: deque[Request] = make_queue() if make_queue is not None else deque()
        self.running: list[Request] = []
        self.prefilling: list[Request] = []  # running requests still in their prefill pass
        # lockstep decoders as aggregates (O(1) per step) when the scheduler decodes everyone each step
        use_cohort = cohort and getattr(scheduler, "cohort_decoding", False)
        self.cohort: Cohort | None = Cohort(capacity.block_size) if use_cohort else None
        self.held: list[Request] = []  # finished, response held until the running batch ends (`Request.hold`)
        self.arrivals_closed = False  # the workload will route no more requests here
        self.swap_s = 0.0  # total seconds of swap traffic priced into iterations
        self._swap_pending = 0.0  # swap seconds incurred while planning, added to the next iteration
        # admitted a request whose KV was here already: the queue's head changed, so the next plan may differ
        # although no block freed — take one step, as a swap-in does
        self._one_step = False
        self.t = 0.0  # the instance's exact clock (env.now may differ by rounding)
        self.iterations = 0
        self.busy_s = 0.0
        self.tokens_out = 0
        self._idle: simpy.Event | None = None
        self._wake_t = 0.0  # arrival time of the request that last woke this idle instance
        self._run: _Run | None = None
        self.tracer: Tracer | None = None  # `sim.output.perfetto.Tracer` when the run writes a trace; None = no cost
        # cluster shapes (set by their builders after construction; None/empty = off, no cost)
        self.role = "colocated"  # or "prefill" / "decode" (disaggregated pools)
        self.prefix_cache: PrefixPool | None = None  # also `self.pool` when prefix caching is on
        self.handoff: Callable[[Request, float, float], None] | None = None  # prefill done: (req, start, end)
        self.on_release: Callable[[Instance], None] | None = None  # called after finished requests free blocks
        self.outgoing = 0  # requests whose blocks stay here while their KV is copied out
        self.incoming = 0  # blocks taken for KV copies on their way in
        self.max_kv_tokens = 1 << 62  # where it decodes next (a decode pool) holds at most this many tokens
        self.evicting: list[tuple[Request, Callable[[Request | None], None]]] = []  # leave at the next boundary
        self.process = env.process(self._loop())

    # -- InstanceView ------------------------------------------------------------------------------
    @property
    def free_blocks(self) -> int:
        return self.pool.free

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def admit_blocks(self, req: Request) -> int:
        """Blocks `req` takes from the free pool on admission: its whole prefill pass (less prefix-cache hits
        that others hold), its swapped-out KV, or none when its KV was copied here already."""
        if req.kv_here:
            return 0
        if req.prefill_done < req.prefill_target:
            if self.prefix_cache is not None and req.kv_tokens == 0:
                return self.prefix_cache.admit_blocks(req)
            return self.blocks_for(req.prefill_target)
        return self.blocks_for(req.kv_tokens)

    def can_admit(self, req: Request) -> bool:
        need = self.admit_blocks(req)
        return need == 0 or self.pool.free - need >= self.watermark_blocks

    def admit(self, req: Request) -> None:
        if self.waiting[0] is req:
            self.waiting.popleft()
        else:
            self.waiting.remove(req)
        if req.kv_here:  # transferred or migrated: its blocks are held here already, nothing to copy
            req.kv_here = False
            self._one_step = True
        elif self.prefix_cache is not None and req.kv_tokens == 0 and req.prefill_done < req.prefill_target:
            # cached prompt blocks are shared, the prefill starts after them; host-tier ones are copied back
            self._swap_pending += self.prefix_cache.admit(req) * self.swap_block_s
        else:
            need = self.admit_blocks(req)
            self.pool.take(need)
            req.blocks = need
            if req.kv_tokens:  # swapped out earlier: copy its KV back in
                self._swap_pending += self.blocks_for(req.kv_tokens) * self.swap_block_s
        if math.isnan(req.first_scheduled):
            req.first_scheduled = self.t
        self.running.append(req)
        if req.prefill_done < req.prefill_target:
            self.prefilling.append(req)
        elif self.cohort is not None and not self.cohort.reserved:  # swapped back in after its prefill
            self.cohort.join(req)  # (while a step is reserved it joins once its own slot is: see `_adopt`)

    def decode_all(self, plan: BatchPlan) -> bool:
        co = self.cohort
        if co is None or co.n == 0 or co.reserved:
            return False
        need = co.blocks(0, 1)
        if need > self.pool.free:
            return False
        self.pool.take(need)
        co.reserved = True
        plan.cohort = True
        plan.cohort_n = co.n
        return True

    def decoding(self) -> list[Request]:
        co = self.cohort
        if co is None:
            return [r for r in self.running if r.prefill_done >= r.prefill_target]
        members = [r for r in self.running if r.co_base >= 0]
        for r in members:
            co.sync(r)
        return members

    def sync_all(self) -> None:
        """Write every cohort member's true state into its fields (before reading them from outside)."""
        if self.cohort is not None:
            for r in self.running:
                if r.co_base >= 0:
                    self.cohort.sync(r)

    def reserve_decode_slot(self, req: Request) -> bool:
        if req.kv_tokens + 1 <= (req.blocks + req.shared_blocks) * self.block_size:
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
            if r.kv_tokens >= (r.blocks + r.shared_blocks) * bs:
                r.blocks += 1
                taken += 1
        self.pool.take(taken)
        return True

    def preempt(self, req: Request) -> None:
        if req.co_base >= 0:
            self.cohort.leave(req)  # type: ignore[union-attr]
        elif req.prefill_done < req.prefill_target:
            self.prefilling.remove(req)
        self.running.remove(req)
        self._give(req)
        if self.preemption == "swap" and req.kv_tokens:
            # KV goes to host memory (assumed large enough) and comes back on admission; progress is kept
            self._swap_pending += self.blocks_for(req.kv_tokens) * self.swap_block_s
        else:
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
        """Blocks in use now, counting the steps of a fast-forward run already behind us and the step in
        flight (step-by-step reserves a step's blocks when it starts, so the step running now counts)."""
        used = self.pool.used
        run = self._run
        if run is not None:
            done = min(bisect.bisect_right(run.times, self.env.now, 0, run.k) + 1, run.k)
            if done and run.cohort:
                used += self.cohort.blocks(1, done - 1)  # type: ignore[union-attr]
            elif done:
                used += sum(
                    max(0, self.blocks_for(r.kv_tokens + done) - r.blocks - r.shared_blocks) for r in run.decode
                )
        return used

    # -- arrivals ------------------------------------------------------------------------------------
    def enqueue(self, req: Request) -> None:
        """Accept a routed request, or reject it when it can never fit this instance."""
        req.instance = self.index
        total = req.prompt + req.output
        if total > self.max_context:
            self.log.reject(req, "exceeds_context")
            return
        held = req.prompt if self.role == "prefill" else total  # a prefill instance holds only the prompt's KV
        if self.blocks_for(held) > self.num_blocks - self.watermark_blocks or total > self.max_kv_tokens:
            self.log.reject(req, "exceeds_kv_cache")
            return
        self.waiting.append(req)
        if self._idle is not None:
            self._wake_t = req.arrival  # env.now may sit one rounding step below the exact arrival time
            idle, self._idle = self._idle, None
            idle.succeed()
        elif self._run is not None:
            self._truncate(self.env.now)

    def close_arrivals(self) -> None:
        """No more requests will come: wake a scheduler that waits to fill a batch so it can flush."""
        self.arrivals_closed = True
        if self._idle is not None:
            idle, self._idle = self._idle, None
            idle.succeed()

    def _truncate(self, now: float, strict: bool = False) -> None:
        """Cut the run in flight at the end of the step running at `now`, so the next plan sees the arrival.
        `strict`: a step ending exactly at `now` has ended (late-phase callers, `sim.core.late`)."""
        run = self._run
        assert run is not None
        j = (bisect.bisect_right if strict else bisect.bisect_left)(run.times, now, 0, run.k)
        if j + 1 < run.k:
            run.k = j + 1
            self.process.interrupt()

    # -- the loop ------------------------------------------------------------------------------------
    def _loop(self):  # type: ignore[no-untyped-def]
        env = self.env
        while True:
            if self.evicting:
                self._evict()
            if self.held and not self.running:
                self._release_held()
            if not self.waiting and not self.running:
                self._idle = env.event()
                yield self._idle
                self.t = max(env.now, self._wake_t)
                continue
            plan = self.scheduler.schedule(self, self.t)
            if plan.empty:
                wake = plan.wait_until
                if wake is None and not self.running and self._admit_present():
                    continue  # requests holding their KV here were stuck behind the queue's head: let them in
                if wake is None and (self.outgoing or self.incoming):
                    wake = math.inf  # memory held for KV copies out of or into here comes back when they end
                elif wake is None or (wake == math.inf and self.arrivals_closed) or self._swap_pending:
                    raise RuntimeError(
                        f"instance {self.index}: scheduler planned nothing with {len(self.waiting)} waiting "
                        f"and {len(self.running)} running (free blocks {self.pool.free})"
                    )
                # the policy waits (e.g. to fill a fixed-size batch): sleep until an arrival or its wake time
                self._idle = env.event()
                yield self._idle if wake == math.inf else self._idle | env.timeout(max(0.0, wake - env.now))
                self._idle = None
                self.t = max(env.now, self._wake_t)
                continue
            if self.cohort is not None and (plan.decode or plan.cohort):
                self._adopt(plan)
            if plan.prefill:
                yield from self._mixed(plan)
            elif plan.cohort:
                yield from self._decode_cohort(plan)
            else:
                yield from self._decode(plan)
            self._one_step = False

    def _adopt(self, plan: BatchPlan) -> None:
        """Turn a cohort scheduler's decode plan into a cohort step. Either `decode_all` reserved the
        members' next slots (and `plan.decode` holds requests swapped in since, each with its slot
        reserved), or the slow path reserved every member's slot one by one (after preemption)."""
        co = self.cohort
        assert co is not None
        if plan.cohort:
            for r in plan.decode:  # swapped in after `decode_all`, slot reserved one by one
                if r.co_base < 0:
                    co.join(r)
        elif len(plan.decode) != co.n or any(r.co_base < 0 for r in plan.decode):
            raise RuntimeError(
                f"scheduler {type(self.scheduler).__name__} declares cohort_decoding but planned "
                f"{len(plan.decode)} of {co.n} decoding requests"
            )
        plan.cohort, plan.cohort_n, plan.decode = True, co.n, []
        co.reserved = True

    def _sleep_until(self, t_end: float):  # type: ignore[no-untyped-def]
        yield self.env.timeout(exact_delay(self.env.now, t_end))

    def _mixed(self, plan: BatchPlan):  # type: ignore[no-untyped-def]
        """An iteration with prefill work (and, for chunked schedulers, decodes)."""
        decode = plan.decode
        co = self.cohort if plan.cohort else None
        if self.prefix_cache is not None:  # a chunk sized before admission may exceed what a cache hit left
            plan.prefill = [(r, min(n, r.prefill_target - r.prefill_done)) for r, n in plan.prefill]
        chunks = [(n, r.prefill_done) for r, n in plan.prefill]
        if co is not None:
            n_dec, ctx = co.n, co.kv + co.n
        else:
            n_dec, ctx = len(decode), sum(r.kv_tokens for r in decode) + len(decode)
        dt = self.cost.iteration(chunks, n_dec, ctx)
        if self._swap_pending:
            dt += self._take_swap()
        t_end = self.t + dt
        yield from self._sleep_until(t_end)
        if self.tracer is not None:
            self.tracer.iteration(self.index, self.t, t_end, len(chunks), sum(c[0] for c in chunks), n_dec)
        self.t = t_end
        self.iterations += 1
        self.busy_s += dt
        itl = self.log.itl
        finished = []
        if co is not None:  # the cohort steps before this iteration's prefills join it
            new, finished = co.step(1, t_end, t_end, itl)
            self.pool.take(new)
        prefilled = 0
        handed = []
        for req, n in plan.prefill:
            req.prefill_done += n
            req.kv_tokens += n
            if req.prefix is not None and self.prefix_cache is not None:
                self.prefix_cache.insert(req)  # its full prompt blocks become shareable as they are computed
            if req.prefill_done == req.prefill_target:
                prefilled += 1
                self.prefilling.remove(req)
                if req.generated == 0:
                    req.first_token = t_end
                else:
                    itl.add_one(t_end - req.last_token)
                req.generated += 1
                req.last_token = t_end
                if req.generated == req.output:
                    finished.append(req)
                elif self.handoff is not None:  # a prefill instance: decoding happens elsewhere
                    handed.append(req)
                elif self.cohort is not None:
                    self.cohort.join(req)
        for req in decode:
            itl.add_one(t_end - req.last_token)
            req.generated += 1
            req.kv_tokens += 1
            req.last_token = t_end
            if req.generated == req.output:
                finished.append(req)
        self.tokens_out += n_dec + prefilled
        if handed:
            self._hand_off(handed, t_end - dt, t_end)
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
        if self.fast_forward and plan.preempted == 0 and k_max > 1 and not self._one_step:
            k = min(k_max, self.scheduler.decision_horizon(self, plan))
            if n * (-(-k // self.block_size)) > self.pool.free:  # blocks might run short within k steps
                k = self._block_limit(decode, k)
        if self._swap_pending:
            k = 1  # swap traffic lengthens this step only; both modes take the same single step
        steps = np.arange(1, k + 1, dtype=np.int64)
        durations = self.cost.decode_run(n, ctx0 + n * steps)
        if self._swap_pending:
            durations = durations.copy()
            durations[0] += self._take_swap()
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
        if self.tracer is not None:  # one span for the whole run, not k
            self.tracer.decode_run(self.index, self.t, t_end, k, n)
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
            need = -(-kv // bs) - req.blocks - req.shared_blocks
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

    def _decode_cohort(self, plan: BatchPlan):  # type: ignore[no-untyped-def]
        """`_decode` for a cohort plan: the same steps and times, O(block_size) bookkeeping."""
        co = self.cohort
        assert co is not None
        n = co.n
        k = 1
        if self.fast_forward and plan.preempted == 0 and not self._swap_pending and not self._one_step:
            k_max = co.steps_to_completion()
            if k_max > 1:
                k = co.block_limit(min(k_max, self.scheduler.decision_horizon(self, plan)), self.pool.free)
        times, arr = self._step_times(n, co.kv, k, self._take_swap() if self._swap_pending else 0.0)
        t0 = self.t
        env = self.env
        if k > 1:
            run = self._run = _Run([], times, cohort=True)
            try:
                yield env.timeout(exact_delay(env.now, times[-1]))
            except simpy.Interrupt:
                while True:  # finish the step in flight; later arrivals cannot cut further back
                    try:
                        yield env.timeout(exact_delay(env.now, times[run.k - 1]))
                        break
                    except simpy.Interrupt:
                        continue
            self._run = None
            k = run.k
        else:
            yield env.timeout(exact_delay(env.now, times[0]))
        t_end = times[k - 1]
        if self.tracer is not None:  # one span for the whole run, not k
            self.tracer.decode_run(self.index, t0, t_end, k, n)
        self.t = t_end
        self.iterations += k
        self.busy_s += t_end - t0
        self.tokens_out += n * k
        itl = self.log.itl
        new, finished = co.step(k, times[0], t_end, itl)
        self.pool.take(new)
        if k > 1:
            if arr is not None:
                itl.add(arr[1:k] - arr[: k - 1], n)
            else:
                itl.add_gaps(times, k, n)
        if finished:
            self._finish(finished)

    def _step_times(self, n: int, ctx0: int, k: int, extra_first: float = 0.0) -> tuple[list[float], np.ndarray | None]:
        """End times of k decode steps of n sequences from context sum ctx0, accumulated from `self.t`
        (`extra_first` lengthens the first step, e.g. swap traffic). Bit-identical to `_decode`: the same
        float operations in the same order, in plain Python for short affine runs."""
        coeffs = decode_coeffs(self.cost, n) if k <= 64 else None  # numpy wins for longer runs
        t = self.t
        if coeffs is not None:
            a, b = coeffs
            out = []
            for s in range(1, k + 1):
                d = a + b * float(ctx0 + n * s)
                if s == 1 and extra_first:
                    d += extra_first
                t = t + d
                out.append(t)
            return out, None
        durations = self.cost.decode_run(n, ctx0 + n * np.arange(1, k + 1, dtype=np.int64))
        if extra_first:
            durations = durations.copy()
            durations[0] += extra_first
        arr = np.cumsum(np.concatenate(([t], durations)))[1:]
        return arr.tolist(), arr

    def _block_limit(self, decode: list[Request], k: int) -> int:
        """Largest number of steps (≤ k) whose new KV blocks fit in the free pool."""
        bs = self.block_size
        spare = np.fromiter(
            ((r.blocks + r.shared_blocks) * bs - r.kv_tokens for r in decode), dtype=np.int64, count=len(decode)
        )
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
            self._give(req)
            if req.hold:  # generated in full; its response goes out with its batch
                self.held.append(req)
            else:
                req.completion = self.t
                self.log.complete(req)
        if self.on_release is not None:
            self.on_release(self)

    def _release_held(self) -> None:
        """The batch is over: deliver the responses held for it (completion = batch end)."""
        for req in self.held:
            req.completion = self.t
            self.log.complete(req)
        self.held.clear()

    def _take_swap(self) -> float:
        """Swap seconds incurred while planning, charged to the iteration about to run (PCIe is serial)."""
        s, self._swap_pending = self._swap_pending, 0.0
        self.swap_s += s
        return s

    # -- cluster shapes: KV copied in and out (see sim/cluster/disagg.py, migration.py)
    def _give(self, req: Request) -> None:
        """Return a request's blocks to the pool (its shared prefix-cache blocks go back to the cache)."""
        if req.prefix is not None and self.prefix_cache is not None:
            self.prefix_cache.free_request(req)
        else:
            self.pool.give(req.blocks)
        req.blocks = 0

    def _hand_off(self, reqs: list[Request], start: float, end: float) -> None:
        """Prefilled requests leave for a decode instance; their blocks stay until their KV is copied out."""
        gone = set(map(id, reqs))
        self.running = [r for r in self.running if id(r) not in gone]
        self.outgoing += len(reqs)
        assert self.handoff is not None
        for req in reqs:
            self.handoff(req, start, end)

    def _nudge(self) -> None:
        """Something outside changed this instance's queue or memory at `now` (in the late phase): replan at
        the end of the step in flight, as step-by-step would."""
        if self._idle is not None:
            idle, self._idle = self._idle, None
            idle.succeed()
        elif self._run is not None:
            self._truncate(self.env.now, strict=True)

    def settle(self) -> int:
        """Free blocks once the step in flight ends (a fast-forward run is cut there first), so that blocks
        taken from outside now — a KV copy coming in — cannot collide with the run's own growth."""
        if self._run is not None:
            self._truncate(self.env.now, strict=True)
        return self.num_blocks - self.kv_used_blocks()

    def reserve_incoming(self, blocks: int) -> bool:
        """Take `blocks` for a KV copy coming in, if they fit above the watermark after the step in flight."""
        if self.settle() - blocks < self.watermark_blocks:
            return False
        self.pool.take(blocks)
        self.incoming += blocks
        return True

    def unreserve_incoming(self, blocks: int) -> None:
        """A copy coming in was called off: its blocks are free again."""
        self.pool.give(blocks)
        self.incoming -= blocks
        self._nudge()

    def deliver(self, req: Request, front: bool = False, copied: bool = True) -> None:
        """Queue a request whose KV now sits here: copied in (`req.blocks` taken by `reserve_incoming`), or,
        `copied=False`, never gone (a migration called off after the stop). The scheduler admits it like a
        swap-in that copies nothing."""
        req.kv_here = True
        if copied:
            self.incoming -= req.blocks
        if front:
            self.waiting.appendleft(req)
        else:
            self.waiting.append(req)
        self._nudge()

    def release(self, req: Request) -> None:
        """`req`'s KV has been copied out: free the blocks it kept here."""
        self._give(req)
        self.outgoing -= 1
        self._nudge()
        if self.on_release is not None:
            self.on_release(self)

    def exact_kv(self, req: Request) -> int:
        """KV tokens a running request holds now (a cohort member's fields lag; steps behind a run count)."""
        kv = req.kv_tokens
        if req.co_base >= 0 and self.cohort is not None:
            kv += self.cohort.G - req.co_base
        run = self._run
        if run is not None and (req.co_base >= 0 if run.cohort else req in run.decode):
            kv += bisect.bisect_right(run.times, self.env.now, 0, run.k)
        return kv

    def request_evict(self, req: Request, done: Callable[[Request | None], None]) -> None:
        """Take a decoding request out at the end of the step in flight (a migration's stop-and-copy); `done`
        gets it with exact fields and its blocks still held here (`outgoing`), or None if it is no longer
        running here."""
        self.evicting.append((req, done))
        self._nudge()

    def _admit_present(self) -> bool:
        """Admit the waiting requests whose KV is here already (they hold memory the queue's head may need)."""
        present = [r for r in self.waiting if r.kv_here]
        for req in present:
            self.admit(req)
        return bool(present)

    def _evict(self) -> None:
        todo, self.evicting = self.evicting, []
        for req, done in todo:
            if not req.in_prefill and req in self.running:
                if req.co_base >= 0:
                    self.cohort.leave(req)  # type: ignore[union-attr]
                self.running.remove(req)
                self.outgoing += 1
                done(req)
            else:
                done(None)
