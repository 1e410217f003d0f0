"""Cross-prompt runs: the step that ends one prompt's prefill and starts the next one's, and the next prompt's
chunks after it, slept as one event.

Under chunked prefill (`sarathi`) with prompts queueing, a prompt's last piece shares its step with the next
prompt's first chunk: the plan is every decoder, (B, B's remainder), (C, the rest of the budget). Stepping then
plans again after that step, and the plan is every decoder (B among them now) plus C's next chunk of the whole
budget, which repeats (`Sarathi.chunk_horizon`) until C's prefill ends, a decoder completes or KV runs short.
Between those steps only this changes: the clock (each step's price added), the cohort's step count and context
(n tokens a step, B's prompt joining it after the first step), the free blocks (each step's decode slots) and
C's prefill progress. Nothing else can change that plan: an arrival queues behind the full budget, and only the
prompt's shorter remainder (the run's last step, when nobody queues) would be planned beside a newcomer, so an
arrival before it cuts it off (`Instance._cut_tail`), as for chunk runs. The scheduler vouches for this
(`Sarathi.chunk_after`); the engine prices the first step as `mixed_step` does and the rest as `chunk_run` does
(the same floats in the same order), sleeps once, and on waking applies the first step's bookkeeping and then
the chunks' exactly as those two would, for as many steps as ran (a nudge may cut the run anywhere).

Not taken (the loop plans step by step as before): a prefix cache (registrations per chunk), a scheduler that
allocates per chunk (`vllm`), context holds and receive intervals (the scheduler declines), migration (it reads
a running request's exact KV, which the joining prompt would only get at the run's end) and a horizon (the
run in flight is settled by `steps.settle_run`, which knows chunk and decode runs only); the engine switches
these off (`Simulation`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.core.batch import BatchPlan
from sim.core.cohort import Cohort, joiner_blocks
from sim.core.request import Request
from sim.core.steps import (
    MAX_CHUNK_RUN,
    DecodeRun,
    Steps,
    _advance_prefills,
    _chunk_steps,
    _onward,
    mixed_step,
    sleep_run,
    steps_ran,
)

if TYPE_CHECKING:
    from sim.core.instance import Instance


def cross_length(inst: Instance, plan: BatchPlan, co: Cohort | None, tail: bool) -> tuple[int, bool]:
    """Steps of the next prompt's chunks that follow the plan's step (0: no cross-prompt run), and whether the last
    of them is its shorter remainder. Stops where the engine stops a chunk run: the prompt's end, the first
    completion (a decoder's, or the joining prompt's own last token) and before the decode slots run short."""
    (b, _), (c, nc) = plan.prefill
    if plan.decode or plan.preempted or inst.one_step or inst.host.pending:
        return 0, False
    if b.generated + 1 >= b.output:  # the first prompt's only token ends it: it never joins the cohort
        return 0, False
    bs = inst.block_size
    if b.blocks + b.shared_blocks != -(-b.prefill_target // bs):  # its blocks must cover exactly its prompt
        return 0, False
    if c.blocks + c.shared_blocks < -(-c.prefill_target // bs):  # the next prompt's chunks take no blocks
        return 0, False
    n = co.n if co is not None else 0
    q2 = plan.prefill[0][1] + nc - 1  # the budget less one more decoder
    if q2 <= 0:
        return 0, False
    full, rest = divmod(c.prefill_target - c.prefill_done - nc, q2)
    tail = tail and rest > 0
    k = full + tail
    stc = co.steps_to_completion() if co is not None and n else 1 << 62
    k = min(k, MAX_CHUNK_RUN - 1, stc - 1, b.output - b.generated - 1)
    if k <= 0:
        return 0, False
    free, kv_b = inst.allocator.free, b.prefill_target

    def need(m: int) -> int:  # blocks of the decode slots of the chunk steps 1..m
        return (co.blocks(1, m) if co is not None and n else 0) + joiner_blocks(kv_b, m, bs)

    if need(k) > free:
        lo, hi = 0, k  # need(lo) fits, need(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if need(mid) <= free:
                lo = mid
            else:
                hi = mid
        k = lo
        if k <= 0:
            return 0, False
    return k, tail and k == full + 1


def cross_step(inst: Instance, plan: BatchPlan, tail: bool) -> Steps:
    """The plan's step (the first prompt's last piece beside the next one's first chunk) and the next prompt's
    chunks after it as one sleep; `tail`: the scheduler allows the next prompt's remainder as the last step."""
    co = inst.cohort if plan.cohort else None
    k2, tail = cross_length(inst, plan, co, tail)
    if k2 == 0:
        yield from mixed_step(inst, plan)
        return
    (b, nb), (c, nc) = plan.prefill
    n = co.n if co is not None else 0
    ctx = co.kv + n if co is not None else 0
    # the plan's step, priced as `mixed_step` prices it
    dt = inst.cost.iteration([(nb, b.prefill_done), (nc, c.prefill_done)], n, ctx)
    t1 = inst.t + dt
    # the next prompt's chunks, priced as `chunk_run` prices them: n + 1 decoders (the first prompt joined)
    n2, q2, c0 = n + 1, nb + nc - 1, c.prefill_done + nc
    ctx2 = (co.kv + n if co is not None else 0) + b.prefill_target + n2
    last = c.prefill_target - c0 - q2 * (k2 - 1) if tail else q2
    priced = getattr(inst.cost, "chunk_steps", None)
    if priced is not None:
        times, durations = priced(t1, q2, c0, n2, ctx2, k2, last)
    else:
        times, durations = _chunk_steps(inst.cost, t1, q2, c0, n2, ctx2, k2, last)
    times.insert(0, t1)
    wake = sleep_run(inst, times, (c, q2), tail)
    assert inst.run is not None
    inst.run.join = b.prefill_target  # the joiner's KV: `kv_used_blocks` counts its slots while the run is asleep
    yield wake
    ran = steps_ran(inst)
    _first_step(inst, plan, co, n, dt, t1)
    if ran > 1:
        yield from _chunks(inst, c, q2, c0, n2, times, durations, ran - 1, tail and ran == k2 + 1)


def _first_step(inst: Instance, plan: BatchPlan, co: Cohort | None, n: int, dt: float, t1: float) -> None:
    """`mixed_step`'s bookkeeping of the plan's step (no prefix cache, speculation, hand-off or tracer here)."""
    inst.t = t1
    inst.iterations += 1
    inst.busy_s += dt
    finished: list[Request] = []
    if co is not None:
        new, finished = co.step(1, t1, t1, inst.log.itl)
        if new:
            inst.allocator.take(new)
    prefilled, _ = _advance_prefills(inst, plan, t1, finished)
    inst.tokens_out += n + prefilled
    inst.finish(finished)


def _chunks(
    inst: Instance,
    c: Request,
    q2: int,
    c0: int,
    n: int,
    times: list[float],
    durations: list[float],
    k: int,
    ends: bool,
) -> Steps:
    """`chunk_run`'s bookkeeping of the next prompt's k chunks (`times[1:k + 1]`); `ends`: its remainder ran."""
    tokens = c.prefill_target - c0 if ends else q2 * k
    t_end = times[k]
    inst.t = t_end
    inst.iterations += k
    busy = inst.busy_s
    for dt in durations[:k]:  # the busy time adds up as stepping adds it
        busy += dt
    inst.busy_s = busy
    co = inst.cohort
    itl = inst.log.itl
    new, finished = co.step(k, times[1], t_end, itl)
    if new:
        inst.allocator.take(new)
    if k > 1:
        itl.add_gaps(times[1:], k, n)
    prefilled, _ = _advance_prefills(inst, BatchPlan(prefill=[(c, tokens)]), t_end, finished)
    inst.tokens_out += n * k + prefilled
    inst.finish(finished)
    if inst.steady and _onward(inst, inst.cohort):
        yield from inst.decode_steps(inst, BatchPlan(cohort=True, cohort_n=inst.cohort.n))


__all__ = ["DecodeRun", "cross_length", "cross_step"]
