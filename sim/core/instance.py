"""One model replica: a SimPy process running iterations of continuous batching.

Each iteration the batch scheduler turns (waiting, running, KV state) into a `BatchPlan`, the cost model
prices it, the process sleeps that long (`sim.core.steps`), then tokens advance, requests finish and
blocks free. What the instance works with besides scheduler and cost model — host memory, a prefix cache,
a disaggregation hand-off, a trace — comes in at construction (`sim.core.collaborators`); KV copies in and
out (disaggregation, migration) go through its `copies` port (`sim.core.transfers`).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.core.batch import BatchPlan, BatchScheduler
from sim.core.cohort import Cohort
from sim.core.collaborators import Collaborators, PrefixCaching
from sim.core.kvcache import BlockAllocator, KVCapacity
from sim.core.late import Waitable, sleep_until
from sim.core.loop import Loop
from sim.core.native import mypyc_attr
from sim.core.recorder import RequestLog
from sim.core.request import Request
from sim.core.steps import DecodeRun, decode_run, mixed_step
from sim.core.swap import HostSwap
from sim.core.transfers import KVCopies
from sim.core.view import BatchView
from sim.costmodel.models import CostModel

NO_COLLABORATORS = Collaborators()


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled (`sim.core.native`): the tests' reference extends it
class Instance(BatchView):
    """A replica on `tp` GPUs. Implements `sim.core.batch.InstanceView` for its scheduler (`BatchView`)."""

    # how a decode-only plan runs: the cohort path (the tests swap in the per-request reference to prove it)
    # (the compiled core, `sim.core.native`, keeps it per object: a subclass sets its own in `__init__`)
    decode_steps = staticmethod(decode_run)

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
        overlap_admission: bool = False,
        role: str = "colocated",
        max_kv_tokens: int = 1 << 62,
        collaborators: Collaborators = NO_COLLABORATORS,
    ) -> None:
        self.env = env
        self.index = index
        self.scheduler = scheduler
        self.cost = cost
        self.log = log
        self.max_context = max_context
        self.fast_forward = fast_forward
        self.role = role  # "colocated", or "prefill" / "decode" (disaggregated pools)
        self.max_kv_tokens = max_kv_tokens  # where it decodes next (a decode pool) holds at most this many tokens
        self.block_size = capacity.block_size
        self.num_blocks = capacity.num_blocks
        self.watermark_blocks = int(watermark * capacity.num_blocks)
        c = collaborators
        self.prefix_cache = c.prefix_cache
        self.allocator: BlockAllocator | PrefixCaching = c.prefix_cache or BlockAllocator(capacity.num_blocks)
        self.host = c.host or HostSwap()
        self.handoff = c.handoff
        self.on_release = c.on_release
        self.tracer = c.tracer
        self.speculation = c.speculative
        self.copies = KVCopies(self)
        make_queue = getattr(scheduler, "waiting_queue", None)  # a scheduler may keep waiting in its own order
        self.waiting: deque[Request] = make_queue() if make_queue is not None else deque()
        self.running: list[Request] = []
        self.prefilling: list[Request] = []  # running requests still in their prefill pass
        # decoders as aggregates: all of them, in lockstep, when the scheduler decodes everyone each step;
        # else the ones a scheduler picked, for one decode run
        # (speculative decoding advances each sequence by its own draw: per request, never a cohort)
        self.lockstep: bool = getattr(scheduler, "cohort_decoding", False) and self.speculation is None
        self.cohort = Cohort(capacity.block_size)
        self.held: list[Request] = []  # finished, response held until the running batch ends (`Request.hold`)
        self.abandoning: list[Request] = []  # their clients gave up: leave the batch at the next step boundary
        self.arrivals_closed = False  # the workload will route no more requests here
        # admitted a request whose KV was here already: the queue's head changed, so the next plan may differ
        # although no block freed — take one step, as a swap-in does
        self.one_step = False
        # `serving_engine.overlap_admission`: the engine plans one step ahead, so a prompt enqueued while a step runs
        # misses the next plan (`_lagged`): (request, when) of arrivals on a busy instance since the last plan, and
        # when stepping made the plan of the step that ended last (`plan_t`: a run sets its last step's start)
        self.overlap_admission = overlap_admission
        self._busy_arrivals: list[tuple[Request, float]] = []
        self.plan_t = -math.inf
        self.t = 0.0  # the instance's exact clock (env.now may differ by rounding)
        self.iterations = 0
        self.busy_s = 0.0
        self.tokens_out = 0
        self._idle: simpy.Event | None = None
        self._wake_t = 0.0  # arrival time of the request that last woke this idle instance
        self.run: DecodeRun | None = None  # a fast-forward decode run in flight
        # chunk runs (`steps.chunk_run`): the scheduler's `chunk_horizon`, where nothing else watches each step
        plain = c.handoff is None and c.tracer is None and self.lockstep
        self.chunk_horizon = getattr(scheduler, "chunk_horizon", None) if fast_forward and plain else None
        self.chunk_tail = getattr(scheduler, "chunk_tail", None) if self.chunk_horizon is not None else None
        # decode runs go on past completions (`steps._onward`) for a scheduler whose plan, with nobody waiting or
        # prefilling, is every decoder again (`steady_decode`), where nothing else watches each plan
        self.steady = fast_forward and plain and c.on_release is None and getattr(scheduler, "steady_decode", False)
        self.process = Loop(env, self._loop())  # `env.process`, resumed by compiled code (`sim.core.loop`)

    @property
    def swap_s(self) -> float:
        """Seconds of host-link traffic priced into iterations."""
        return self.host.total_s

    # -- arrivals and outside changes ----------------------------------------------------------------------
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
        else:
            # with the lag the plan after the step in flight hides it: a decode run goes on one step more, a chunk
            # run's remainder is cut only when planned a boundary later
            lag = self.lag_arrival(req)
            if (run := self.run) is not None:
                if run.chunk is None:
                    self._truncate(self.env.now, lag=lag)
                elif run.tail:  # a chunk run's full chunks hold whoever queues behind; its remainder's step does not
                    self._cut_tail(run, self.env.now, lag)

    def lag_arrival(self, req: Request) -> int:
        """`overlap_admission`: record `req`, queued while a step runs, for the next plan to hide (`_lagged`); the
        steps it lags (1, or 0 without the lag or on an idle instance). New prompts and KV copies come here."""
        if not self.overlap_admission or self._idle is not None:
            return 0
        self._busy_arrivals.append((req, self.env.now))
        return 1

    def abandon(self, req: Request) -> None:
        """Its client gave up on `req` (late phase, `workload.timeout_s`): it leaves the queue or the batch at
        the end of the step in flight (at once when idle), so both decode modes plan next without it."""
        self.log.abandon(req)
        self.abandoning.append(req)
        self.nudge()

    def _let_go_abandoned(self) -> None:
        todo, self.abandoning = self.abandoning, []
        for req in todo:
            if req in self.running:
                self.remove_running(req)
                self.give_blocks(req)
            elif req in self.waiting:
                self.waiting.remove(req)
                self.give_blocks(req)  # a request whose KV was swapped or copied here may hold some
            elif req in self.held:
                self.held.remove(req)
            self.log.let_go(req)
        self.released()

    def close_arrivals(self) -> None:
        """No more requests will come: wake a scheduler that waits to fill a batch so it can flush."""
        self.arrivals_closed = True
        if self._idle is not None:
            idle, self._idle = self._idle, None
            idle.succeed()

    def nudge(self) -> None:
        """Something outside changed this instance's queue or memory at `now` (in the late phase): replan at
        the end of the step in flight, as step-by-step would."""
        if self._idle is not None:
            idle, self._idle = self._idle, None
            idle.succeed()
        else:
            self.cut_run()

    def cut_run(self) -> None:
        """Cut a fast-forward run at the step in flight (late phase: a step ending exactly now has ended)."""
        if self.run is not None:
            self._truncate(self.env.now, strict=True)

    def _truncate(self, now: float, strict: bool = False, lag: int = 0) -> None:
        """Cut the run in flight at the end of the step running at `now`, so the next plan sees the arrival.
        `strict`: a step ending exactly at `now` has ended (late-phase callers, `sim.core.late`). `lag` = 1: an
        arrival with `overlap_admission`, hidden from the plan at the end of the step in flight (`_lagged`), which
        is then the run's own next step (nothing else it sees changed): the run ends one step later, where the
        plan sees it."""
        run = self.run
        assert run is not None
        j = (bisect.bisect_right if strict else bisect.bisect_left)(run.times, now, 0, run.k)
        if j + 1 + lag < run.k:
            run.tail = False
            self._cut(run, j + 1 + lag)

    def _cut_tail(self, run: DecodeRun, now: float, lag: int = 0) -> None:
        """An arrival at `now` is seen by the plan of a chunk run's remainder step unless that step is in flight
        (planned at the end of the step before it, a step ending exactly now included, as `_truncate`): then
        the remainder would share its step with the newcomer's chunk, so the run ends after its full chunks.
        `lag` = 1 (`overlap_admission`): the plan at the end of the step in flight hides the arrival (`_lagged`),
        so the remainder shares its step only when that step is planned at least one boundary later."""
        run.tail = False
        if bisect.bisect_left(run.times, now, 0, run.k) < run.k - 1 - lag:
            self._cut(run, run.k - 1)

    def _cut(self, run: DecodeRun, k: int) -> None:
        """End the run after its k-th step: the loop, asleep until the run's last step, is woken by a timeout at
        the k-th step's end instead. (What `Process.interrupt` would do, without its extra event, the thrown
        exception and a second sleep: cutting runs is the engine's most frequent outside change.)"""
        run.k = k
        proc = self.process
        proc._target.callbacks.remove(proc.resume)  # the sleep until the old last step: it fires unheeded
        wake = sleep_until(self.env, float(run.times[k - 1]))
        wake.callbacks = [proc.resume]  # (it was made with none)
        proc._target = wake

    # -- the loop ------------------------------------------------------------------------------------
    def _loop(self) -> Generator[Waitable, Any, None]:
        schedule, copies = self.scheduler.schedule, self.copies  # (hot: once per plan)
        while True:
            if self.abandoning:
                self._let_go_abandoned()
            if copies.evicting:
                copies.evict()
            if self.held and not self.running:
                self._release_held()
            if not self.running and not self.waiting:
                yield from self._wait(math.inf)
                continue
            plan = schedule(self, self.t) if not self.overlap_admission else self._lagged(schedule)
            if not plan.prefill and not plan.cohort and not plan.decode:  # `plan.empty`
                wake = self._wake_time(plan)
                if wake is not None:  # the policy waits (e.g. to fill a fixed-size batch)
                    yield from self._wait(wake)
                continue
            if self.lockstep and (plan.cohort or plan.decode):
                self._adopt(plan)
            if plan.prefill:
                yield from mixed_step(self, plan)
            elif self.speculation is not None:
                yield from self.speculation.step(self, plan)
            else:
                yield from self.decode_steps(self, plan)
            self.one_step = False

    def _lagged(self, schedule: Callable[[Any, float], BatchPlan]) -> BatchPlan:
        """The plan of an engine that schedules one step ahead (`overlap_admission`): the requests enqueued on
        this busy instance during the step that just ended (after its plan, `plan_t`) are hidden from this plan
        while anything runs or prefills (it was made before they came) and seen by the next; the plan is a single
        step (`one_step`), so the wait is exactly one step. With nothing running nor prefilling nothing is hidden
        (an idle engine plans a new prompt at once). A run (decode, chunk, onward) sets `plan_t` to its last
        step's start, where stepping planned: both modes hide the same requests."""
        arrived = self._busy_arrivals
        if not arrived:  # nothing queued during the step (about half the plans): nothing to hide
            try:
                return schedule(self, self.t)
            finally:
                self.plan_t = self.t
        self._busy_arrivals = []
        last = self.plan_t  # (kept while the policy plans: a receive interval polls there, `RecvSkipper.observe`)
        hide: list[Request] = []
        if arrived and (self.running or self.prefilling):
            late = {id(req) for req, when in arrived if when > last}
            if late:
                hide = [req for req in self.waiting if id(req) in late]
        for req in hide:
            self.waiting.remove(req)
        if hide:
            self.one_step = True
        try:
            return schedule(self, self.t)
        finally:
            self.plan_t = self.t
            for req in hide:
                self.waiting.append(req)

    def _wait(self, wake: float) -> Generator[simpy.Event, Any, None]:
        """Sleep until an arrival or a nudge, or until `wake` (math.inf: no timer)."""
        env = self.env
        self._idle = idle = env.event()
        yield idle if wake == math.inf else idle | env.timeout(max(0.0, wake - env.now))
        self._idle = None
        self.t = max(env.now, self._wake_t)

    def _wake_time(self, plan: BatchPlan) -> float | None:
        """When to plan again after an empty plan; None: at once. Raises if nothing could ever change."""
        wake = plan.wait_until
        if wake is None and not self.running and self._admit_present():
            return None  # requests holding their KV here were stuck behind the queue's head: let them in
        if wake is None and self.copies.in_flight:
            return math.inf
        if wake is None or (wake == math.inf and self.arrivals_closed) or self.host.pending:
            raise RuntimeError(
                f"instance {self.index}: scheduler planned nothing with {len(self.waiting)} waiting "
                f"and {len(self.running)} running (free blocks {self.allocator.free})"
            )
        return wake

    def _admit_present(self) -> bool:
        """Admit the waiting requests whose KV is here already (they hold memory the queue's head may need)."""
        present = [r for r in self.waiting if r.kv_here]
        for req in present:
            self.admit(req)
        return bool(present)

    def _adopt(self, plan: BatchPlan) -> None:
        """Turn a lockstep scheduler's decode plan into a cohort step. Either `decode_all` reserved the
        members' next slots (and `plan.decode` holds requests swapped in since, each with its slot
        reserved), or the slow path reserved every member's slot one by one (after preemption)."""
        co = self.cohort
        if plan.cohort:
            if not plan.decode:  # the common case: nobody swapped in since `decode_all`
                co.reserved = True
                return
            for r in plan.decode:  # swapped in after `decode_all`, slot reserved one by one
                if r.cohort_step < 0:
                    co.join(r)
        elif len(plan.decode) != co.n or any(r.cohort_step < 0 for r in plan.decode):
            raise RuntimeError(
                f"scheduler {type(self.scheduler).__name__} declares cohort_decoding but planned "
                f"{len(plan.decode)} of {co.n} decoding requests"
            )
        plan.cohort, plan.cohort_n, plan.decode = True, co.n, []
        co.reserved = True

    # -- requests leaving ---------------------------------------------------------------------------
    def finish(self, finished: list[Request]) -> None:
        """Requests that emitted their last token leave the batch and free their blocks."""
        if not finished:
            return
        if len(finished) > 1:
            gone = set(map(id, finished))
            self.running = [r for r in self.running if id(r) not in gone]
        else:  # `running.remove(finished[0])` by identity (what its `==` falls back to for a `Request`): compiled, a
            # pointer compare per member instead of a rich compare that fails twice first (SPEED.md, s15-speed)
            running, done = self.running, finished[0]
            i = 0
            for r in running:
                if r is done:
                    break
                i += 1
            else:
                raise ValueError("list.remove(x): x not in list")
            del running[i]
        for req in finished:
            self.give_blocks(req)
            if self.abandoning and self.log.is_abandoned(req):
                continue  # its client gave up during the step that generated its last token
            if req.hold:  # generated in full; its response goes out with its batch
                self.held.append(req)
            else:
                req.completion = self.t
                self.log.complete(req)
        self.released()

    def released(self) -> None:
        """Blocks were freed: tell whoever waits for them."""
        if self.on_release is not None:
            self.on_release.released(self)

    def _release_held(self) -> None:
        """The batch is over: deliver the responses held for it (completion = batch end)."""
        for req in self.held:
            req.completion = self.t
            self.log.complete(req)
        self.held.clear()
