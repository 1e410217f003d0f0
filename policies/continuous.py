"""Continuous batching (vLLM-style `fcfs`) and chunked prefill (Sarathi-Serve `sarathi`).

Both admit waiting requests in FCFS order while the KV cache has room above the watermark, and when a
decode needs a block that is not there they preempt the most recently admitted request (recompute),
as vLLM's scheduler does.
"""

from __future__ import annotations

from policies.context_hold import ContextHold, RecvSkipper, hold_terms
from policies.continuous_config import FCFSConfig as FCFSConfig  # (re-exported: plugins import them here)
from policies.continuous_config import SarathiConfig as SarathiConfig
from policies.dp_chunks import RankChunks, rank_chunks
from policies.reserve import Reservation, reservation
from sim.core.batch import UNBOUNDED, BatchPlan, BatchScheduler, InstanceView
from sim.core.native import mypyc_attr
from sim.core.registry import SCHEDULERS
from sim.core.request import Request


def plan_decodes(
    inst: InstanceView, candidates: list[Request], plan: BatchPlan, order: list[Request] | None = None
) -> None:
    """Reserve each candidate's next-token slot in order; when memory runs out, preempt from the back of `order`
    (default: the candidates themselves; vLLM V1 passes every running request, prefills included) until the
    slot fits or the candidate itself is the one preempted."""
    if inst.reserve_decode_slots(candidates):  # common case: memory suffices for everyone
        plan.decode.extend(candidates)
        return
    victims = list(candidates if order is None else order)  # the newest at the back, never one already planned
    gone: set[int] = set()
    for req in candidates:
        if id(req) in gone:
            continue
        while not inst.reserve_decode_slot(req):
            victim = victims.pop()
            gone.add(id(victim))
            inst.preempt(victim)
            plan.preempted += 1
            if victim is req:
                break
        else:
            plan.decode.append(req)


def swapped_out(req: Request) -> bool:
    """A waiting request whose KV sits in host memory (preempted with `kv_cache.preemption: swap`)."""
    return req.kv_tokens > 0


def swap_in(inst: InstanceView, plan: BatchPlan, max_seqs: int, left: int) -> int:
    """Bring swapped-out requests at the head of the queue back while they fit; returns the budget left."""
    waiting = inst.waiting
    while left > 0 and waiting and len(inst.running) < max_seqs:
        req = waiting[0]
        if not swapped_out(req) or not inst.can_admit(req):
            break
        inst.admit(req)
        if req.in_prefill:  # swapped in the middle of a chunked prefill
            n = min(req.prefill_target - req.prefill_done, left)
            plan.prefill.append((req, n))
            left -= n
        elif inst.reserve_decode_slot(req):
            plan.decode.append(req)
            left -= 1
        else:
            inst.preempt(req)
            plan.preempted += 1
            break
    return left


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled (`sim.core.native`): plugins may extend it
class FCFS:
    """Prefill-first: admit as many waiting prompts as fit, else decode every running request."""

    cohort_decoding = True  # every decode plan covers all decoding requests: the engine may aggregate them
    steady_decode = True  # with nobody waiting or prefilling the plan is every decoder: runs may go on past completions

    def __init__(self, cfg: FCFSConfig) -> None:
        self.max_seqs = cfg.max_num_seqs
        self.budget = cfg.max_num_batched_tokens

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        plan = BatchPlan()
        tokens = 0
        waiting, running = inst.waiting, inst.running
        while waiting and len(running) < self.max_seqs:
            req = waiting[0]
            if swapped_out(req):
                break  # vLLM: no new prompts while swapped-out requests wait to come back
            n = req.prefill_target
            if plan.prefill and tokens + n > self.budget:
                break  # a prompt longer than the budget still runs, alone
            if not inst.can_admit(req):
                break
            inst.admit(req)
            plan.prefill.append((req, n))
            tokens += n
        if plan.prefill:
            return plan
        if not inst.decode_all(plan):
            plan_decodes(inst, inst.decoding(), plan)
        if plan.preempted == 0:
            swap_in(inst, plan, self.max_seqs, self.budget)
        return plan

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        # admission only gets harder while decodes take blocks; completions/arrivals end the run anyway
        return UNBOUNDED


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled (`sim.core.native`): vllm, trtllm extend it
class Sarathi:
    """Decode-maximal batches: all decodes, then partial prefills, then new prompts, within the budget."""

    cohort_decoding = True
    steady_decode = True  # (and for `vllm`, which plans like this: decodes first, then prefills and new prompts)
    hold: ContextHold | None = None  # (subclasses that build themselves keep none)
    reserve: Reservation | None = None  # the engine's KV reservation for future outputs (policies/reserve.py)
    ranks: RankChunks | None = None  # SGLang attention DP: chunks per rank (policies/dp_chunks.py)

    def __init__(
        self,
        cfg: SarathiConfig,
        hold: ContextHold | None = None,
        reserve: Reservation | None = None,
        ranks: RankChunks | None = None,
    ) -> None:
        self.max_seqs = cfg.max_num_seqs
        self.budget = cfg.token_budget
        self.reserve = reserve
        self.ranks = ranks
        self.hold = hold  # the serving engine's context holds (TensorRT-LLM), when its terms switch one on
        if hold is not None:  # its counters replay skipped iterations in the state of the last plan: plan at every
            self.steady_decode = False  # completion and prefill end (no onward runs past them)

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        plan = BatchPlan()
        if inst.decode_all(plan):
            left = self.budget - plan.cohort_n
        else:
            plan_decodes(inst, inst.decoding(), plan)
            left = self.budget - len(plan.decode)
        if self.hold is not None and self.hold.holds(inst, plan.decode_count):
            return plan  # context requests wait this iteration: decodes only
        waiting = inst.waiting
        if waiting and plan.preempted == 0 and swapped_out(waiting[0]):  # (`swap_in` stops at once otherwise)
            left = swap_in(inst, plan, self.max_seqs, left)
        self.fill_prefills(inst, plan, left)
        return plan

    def fill_prefills(self, inst: InstanceView, plan: BatchPlan, left: int) -> None:
        """Add to `plan` the running prefills' next chunks, then new prompts in FCFS order while `left` tokens,
        memory, the reservation and `max_seqs` allow (per attention-DP rank with `ranks`). Also the whole of an
        `sglang` prefill batch (policies/sglang.py), planned with no decodes."""
        waiting, running = inst.waiting, inst.running
        if self.ranks is not None:
            self.ranks.fill(inst, plan, self.max_seqs, self.reserve, {r.id for r, _ in plan.prefill})
            return
        prefilling = inst.prefilling
        if left > 0 and prefilling:
            prefill = plan.prefill
            if not prefill and prefilling[0].prefill_target - prefilling[0].prefill_done >= left:
                plan.prefill = [(prefilling[0], left)]  # the first prefill takes the whole budget: the usual case
                return
            swapped = {id(r) for r, _ in prefill} if prefill else ()  # swapped back in mid-prefill: planned
            for req in prefilling:
                if left <= 0:
                    break
                if id(req) not in swapped:
                    n = min(req.prefill_target - req.prefill_done, left)
                    prefill.append((req, n))
                    left -= n
        reserve = self.reserve
        if reserve is not None:
            reserve.begin(inst, plan)
        while left > 0 and waiting and len(running) < self.max_seqs:
            req = waiting[0]
            if swapped_out(req) or not inst.can_admit(req) or (reserve is not None and not reserve.admits(inst, req)):
                break
            inst.admit(req)
            if reserve is not None:
                reserve.admitted(req)
            n = min(req.prefill_target, left)
            plan.prefill.append((req, n))
            left -= n

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        h = UNBOUNDED if self.hold is None else self.hold.horizon()
        if self.reserve is not None and self.reserve.blocked:  # a prompt held back by the reservation
            h = min(h, self.reserve.horizon())
        return h

    def chunk_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        """A plan of every decoder and one chunk that takes the whole budget repeats while nothing but its own
        progress changes: the chunk goes to the first prefilling request again, no budget is left to admit
        (arrivals queue behind), and no swapped-out request heads the queue to come back first. With context
        holds every chunk plan may instead be held (decodes only): the hold decides each iteration, so no run."""
        if self.hold is not None or self.ranks is not None:  # (rank chunks: no run either, each plan decides)
            return 1
        req, n = plan.prefill[0]
        if n != self.budget - plan.decode_count or inst.prefilling[0] is not req:
            return 1
        waiting = inst.waiting
        return 1 if waiting and swapped_out(waiting[0]) else UNBOUNDED

    def chunk_tail(self, inst: InstanceView, plan: BatchPlan) -> bool:
        """After the last full chunk, the plan is every decoder plus the prompt's remainder when no other prompt
        is prefilling and nobody queues (budget is left over then: an arrival would be admitted beside it)."""
        return not inst.waiting and len(inst.prefilling) == 1


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled (`sim.core.native`): sglang's RecvSglang extends it
class RecvSarathi(Sarathi):
    """Sarathi behind SGLang's receive interval (`RecvSkipper`): prompts that arrived after the scheduler's last
    poll are not seen. A subclass, built only when the interval is above 1, so plain Sarathi's per-plan path is
    unchanged. Unseen prompts are the tail of the waiting queue (arrivals append in time order; anything admitted
    before, so anything preempted back to the head, arrived by an earlier poll): it is set aside for the plan,
    so a context hold, where one is also on, counts only received prompts, as the engine's own scheduler would."""

    def __init__(
        self,
        cfg: SarathiConfig,
        hold: ContextHold | None,
        recv: RecvSkipper,
        reserve: Reservation | None = None,
        ranks: RankChunks | None = None,
    ) -> None:
        super().__init__(cfg, hold, reserve, ranks)
        self.recv = recv
        self.steady_decode = False  # its counter replays skipped iterations in the last plan's state (as holds)

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        upto = self.recv.observe(inst, now)
        waiting = inst.waiting
        unseen: list[Request] = []
        while waiting and waiting[-1].arrival > upto:
            unseen.append(waiting.pop())
        plan = super().schedule(inst, now)
        waiting.extend(reversed(unseen))
        if unseen and not plan.prefill and not plan.cohort and not plan.decode:
            # Nothing to run: SGLang's loop goes idle (`event_loop_normal`: no batch, `on_idle()`, `last_batch =
            # None`) and spins; `SchedulerRecvSkipper.handle(None)` adds the idle weight 1 per spin, so the poll
            # comes within `interval` spins of microseconds: the engine receives them now and plans again.
            preempted = plan.preempted
            self.recv.poll(now)
            plan = super().schedule(inst, now)
            plan.preempted += preempted  # (requests the first plan preempted are in the queue: keep the count)
        self.recv.record(bool(plan.prefill), plan.decode_count)
        return plan

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        return min(super().decision_horizon(inst, plan), self.recv.horizon(inst))

    def chunk_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        return 1  # the poll decides each chunk plan, so no run


@SCHEDULERS.register("fcfs", FCFSConfig, whole_prompts=True, mixes_prefill_decode=False)
def _fcfs(cfg: FCFSConfig, **_: object) -> BatchScheduler:
    """vLLM continuous batching, prefill-first"""
    return FCFS(cfg)


@SCHEDULERS.register("sarathi", SarathiConfig, prefill_chunk="token_budget", admission_reserve=True)
def _sarathi(
    cfg: SarathiConfig, engine: object = None, attention_dp: int = 1, model: object = None, **_: object
) -> BatchScheduler:
    """Sarathi-Serve chunked prefill with a token budget"""
    terms = hold_terms(engine, attention_dp, cfg.token_budget)
    hold = ContextHold(terms) if terms.active else None
    ranks = rank_chunks(engine, cfg.token_budget, attention_dp)
    if terms.recv_interval > 1:
        return RecvSarathi(cfg, hold, RecvSkipper(terms.recv_interval), reservation(engine, model), ranks)
    return Sarathi(cfg, hold, reservation(engine, model), ranks)
