"""The kinds of work an instance runs: a mixed iteration (prefill chunks, maybe decodes) and a decode run.

Decode run (the one decode path): the plan's decoders form a `Cohort` — the instance's lockstep cohort
when the scheduler decodes everyone each step, else the requests it picked, for this run only. When the
policy says its decision holds, the run prices the next k steps at once (k = until the first completion or
the first step that would run out of KV blocks) and sleeps once. An arrival during the run truncates it at
the end of the iteration in flight (`Instance._cut` moves the wake-up), so the next plan sees the same state as
step-by-step would. Step-by-step mode runs the very same code with k = 1; clocks are accumulated with the
same float additions, so both modes give bit-identical timestamps.

Chunk run: a mixed plan of every decoder plus one request's prefill chunk that the scheduler says repeats
(`chunk_horizon`: the same request's next chunk of the same size, arrivals queueing behind) runs k steps
the same way — priced step by step, slept as one event — up to the step that ends the prefill, the first
completion or a KV shortfall. Only a nudge (`Instance.cut_run`) cuts it, and an arrival its remainder step.
KV: the run stops before the first step whose decode slots plus chunk blocks (`chunk_growth`: a scheduler that
allocates per chunk, `vllm`) would not fit; the chunk's blocks are taken at the run's end (or the horizon) and
counted by `kv_used_blocks` meanwhile, as if each step's plan had taken them. With a prefix cache a run goes
only when the prompt blocks it registers are not cached already (`_inserts_commute`).
"""

from __future__ import annotations

import bisect
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from sim.core.batch import BatchPlan
from sim.core.clock import step_times
from sim.core.cohort import Cohort
from sim.core.late import Waitable, sleep_until
from sim.core.native import mypyc_attr
from sim.core.request import Request
from sim.costmodel.models import CostModel

if TYPE_CHECKING:
    from sim.core.instance import Instance

Steps = Generator[Waitable, Any, None]


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled (`sim.core.native`): the tests' reference run extends it
class DecodeRun:
    """A run in flight: its absolute step end times and how many steps stand (a cut lowers `k`); `chunk`:
    the (request, tokens per step) prefilled alongside the cohort's decodes, or None for a decode run; `tail`:
    the chunk run's last step is the prompt's shorter remainder, which an arrival before it cuts away."""

    __slots__ = ("chunk", "k", "tail", "times")

    def __init__(self, times: list[float], chunk: tuple[Request, int] | None = None, tail: bool = False) -> None:
        self.times = times
        self.k = len(times)
        self.chunk = chunk
        self.tail = tail


def decode_run(inst: Instance, plan: BatchPlan) -> Steps:
    """k decode-only steps (k = 1 unless fast-forwarding); step 1's slots were reserved by the plan. A lockstep
    run that ends at a completion goes on with the survivors when the next plan is sure to be theirs again
    (`_onward`): the same steps, sleeps and bookkeeping as returning to the loop, without planning. It goes on
    under that plan (every decoder, nothing preempted), not the one it began with, which may have preempted
    (k = 1) or named joiners: both would be stale, and `decision_horizon` sees what stepping would show it."""
    co = inst.cohort
    picked = not plan.cohort  # the scheduler picked these decoders: they form the cohort for this run
    if picked:
        co.form(plan.decode)
        co.reserved = True
    host, cost, itl, allocator = inst.host, inst.cost, inst.log.itl, inst.allocator  # (hot: once per run)
    horizon = inst.scheduler.decision_horizon
    coeffs_of = getattr(cost, "decode_coeffs", None)  # `decode_coeffs(cost, n)` without its wrapper call
    while True:
        n = co.n
        k = 1
        if inst.fast_forward and plan.preempted == 0 and not inst.one_step:
            k_max = co.steps_to_completion()
            if k_max > 1:
                k = co.block_limit(min(k_max, horizon(inst, plan)), allocator.free)
        t0 = inst.t
        coeffs = coeffs_of(n) if n and coeffs_of is not None else None
        if host.pending:  # swap traffic lengthens this step only; both modes take the same single step
            times, arr = step_times(cost, t0, n, co.kv, 1, host.take(), coeffs)
        elif k == 1 and coeffs is not None:  # `step_times`' single affine step, inlined: the same two additions
            a, b = coeffs
            times, arr = [t0 + (a + b * (co.kv + n))], None
        else:
            times, arr = step_times(cost, t0, n, co.kv, k, 0.0, coeffs)
        if len(times) > 1:  # a run: a cut (`Instance._cut`) lowers its `k` while it sleeps
            inst.run = run = DecodeRun(times)
            yield sleep_until(inst.env, times[-1])
            k = run.k
            inst.run = None
        else:
            yield sleep_until(inst.env, times[-1])
            k = 1
        t_end = times[k - 1]
        inst.plan_t = times[k - 2] if k > 1 else t0  # where stepping planned the last step (`Instance._lagged`)
        if inst.tracer is not None:  # one span for the whole run, not k
            inst.tracer.decode_run(inst.index, t0, t_end, k, n)
        inst.t = t_end
        inst.iterations += k
        inst.busy_s += t_end - t0
        inst.tokens_out += n * k
        new, finished = co.step(k, times[0], t_end, itl)
        if new:
            allocator.take(new)
        if k > 1:
            if arr is not None:
                itl.add(arr[1:k] - arr[: k - 1], n)
            else:
                itl.add_gaps(times, k, n)
        if picked:
            co.dissolve(plan.decode)
        if not finished:
            return
        inst.finish(finished)
        # `_onward(inst, co)`, inlined (once per completion): the same tests in the same order
        if picked or not (inst.steady and co.n) or inst.waiting or inst.prefilling or inst.abandoning or inst.held:
            return
        if inst.copies.evicting or inst.one_step or host.pending or not inst.reserve_cohort_step():
            return
        plan = BatchPlan(cohort=True, cohort_n=co.n)  # the plan stepping makes now: no preemption, no joiners


def _onward(inst: Instance, co: Cohort) -> bool:
    """After a completion or the last prompt's prefill: whether the plan stepping makes next is every decoder
    decoding (again), and if so reserve its slots as that plan would (`BatchView.decode_all` and this share
    `reserve_cohort_step`). That holds for a scheduler that says so (`steady_decode`: with nobody waiting or
    prefilling it decodes everyone) when nothing the loop attends to before planning is pending (abandonments,
    evictions, held responses) and memory covers the step (else the scheduler's slow path, preemption, decides).
    `decode_run` tests the same conditions inline (its hot loop): a change here belongs there too."""
    if not (inst.steady and co.n) or inst.waiting or inst.prefilling or inst.abandoning or inst.held:
        return False
    if inst.copies.evicting or inst.one_step or inst.host.pending:
        return False
    return inst.reserve_cohort_step()


def settle_run(inst: Instance, now: float) -> None:
    """At the horizon: credit the steps of the decode or chunk run in flight that ended before `now`, as
    step-by-step would have (each of its steps is an event there); the step running at `now` stays unfinished
    in both, its blocks held."""
    run = inst.run
    if run is None:
        return
    j = bisect.bisect_left(run.times, now, 0, run.k)
    inst.run = None
    if j == 0:
        return
    times, co = run.times, inst.cohort
    n, t_end = co.n, times[j - 1]
    inst.iterations += j
    inst.busy_s += t_end - inst.t
    inst.tokens_out += n * j
    itl = inst.log.itl
    finished: list[Request] = []
    if n:
        new, finished = co.step(j, times[0], t_end, itl)
        inst.allocator.take(new)
        if j > 1:
            itl.add_gaps(times, j, n)
        inst.allocator.take(co.blocks(0, 1))  # the step in flight holds its blocks, as a planned step does
        co.reserved = True
    if run.chunk is not None:  # a chunk run: its prefill ends at its last step, so not among these j
        req, q = run.chunk
        f = min(j, run.k - 1)  # the step in flight takes its blocks too
        grown = chunk_growth(req, q, f, inst.block_size)
        if grown:
            inst.allocator.take(grown)
            req.blocks += grown
        req.prefill_done += q * j
        req.kv_tokens += q * j
        if req.prefix is not None and inst.prefix_cache is not None:
            inst.prefix_cache.insert(req)  # the chunks behind us registered their blocks, as stepping does
    inst.t = t_end
    if finished:  # cannot happen (a run ends at its first completion), kept for safety
        inst.finish(finished)


def mixed_step(inst: Instance, plan: BatchPlan) -> Steps:
    """An iteration with prefill work (and, for chunked schedulers, decodes)."""
    decode = plan.decode
    co = inst.cohort if plan.cohort else None
    if inst.prefix_cache is not None:  # a chunk sized before admission may exceed what a cache hit left
        plan.prefill = [(r, min(n, r.prefill_target - r.prefill_done)) for r, n in plan.prefill]
    spec = inst.speculation
    if co is not None:
        n_dec, ctx = co.n, co.kv + co.n
    else:
        n_dec, ctx = len(decode), sum(r.kv_tokens for r in decode) + len(decode)
    if inst.chunk_horizon is not None and (run := chunk_run_length(inst, plan, co))[0] > 1:
        # chunk runs price every step as `cost.iteration(chunks, n_dec, ctx)`, never a draft + verify: the
        # instance sets `chunk_horizon` only when lockstep, and lockstep excludes speculation (`Instance.__init__`)
        assert spec is None, "a chunk run under speculative decoding would skip the draft and verify costs"
        yield from chunk_run(inst, plan, co, n_dec, ctx, *run)
        return
    prefill = plan.prefill
    if len(prefill) == 1:  # (the rule: one chunk; no comprehension's function call)
        r0, n0 = prefill[0]
        chunks = [(n0, r0.prefill_done)]
    else:
        chunks = [(n, r.prefill_done) for r, n in prefill]
    if spec is not None and decode:  # the decodes verify k + 1 tokens each, after their draft
        dt = spec.draft_s(decode) + inst.cost.iteration(chunks + spec.verify_chunks(decode), 0, 0)
    else:
        dt = inst.cost.iteration(chunks, n_dec, ctx)
    if inst.host.pending:
        dt += inst.host.take()
    t_end = inst.t + dt
    yield sleep_until(inst.env, t_end)
    if inst.tracer is not None:
        inst.tracer.iteration(inst.index, inst.t, t_end, len(chunks), sum(c[0] for c in chunks), n_dec)
    inst.t = t_end
    inst.iterations += 1
    inst.busy_s += dt
    itl = inst.log.itl
    finished: list[Request] = []
    if co is not None:  # the cohort steps before this iteration's prefills join it
        new, finished = co.step(1, t_end, t_end, itl)
        if new:
            inst.allocator.take(new)
    prefilled, handed = _advance_prefills(inst, plan, t_end, finished)
    if spec is not None:
        n_dec = spec.credit(inst, decode, t_end, finished)
        decode = []
    for req in decode:  # decoders the scheduler picked: one token each
        itl.add_one(t_end - req.last_token)
        req.generated += 1
        req.kv_tokens += 1
        req.last_token = t_end
        if req.generated == req.output:
            finished.append(req)
    inst.tokens_out += n_dec + prefilled
    if handed:
        inst.copies.hand_off(handed, t_end - dt, t_end)
    if finished:
        inst.finish(finished)
    if inst.steady and _onward(inst, inst.cohort):  # the prompts are in: the next plan is everyone decoding
        yield from inst.decode_steps(inst, BatchPlan(cohort=True, cohort_n=inst.cohort.n))


MAX_CHUNK_RUN = 256  # steps priced ahead in one chunk run (a nudge may cut it: bounds the work wasted)


def chunk_run_length(inst: Instance, plan: BatchPlan, co: Cohort | None) -> tuple[int, bool]:
    """Steps a plan of every decoder plus one prefill chunk repeats unchanged, and whether the last of them is
    the prompt's shorter remainder: the scheduler vouches for its decision (`chunk_horizon`, and `chunk_tail`
    for the remainder); the engine stops at the step that ends the prefill, at the first completion and
    before the cohort's KV blocks run short."""
    if len(plan.prefill) != 1 or plan.decode or plan.preempted or inst.one_step or inst.host.pending:
        return 1, False
    req, q = plan.prefill[0]
    left = req.prefill_target - req.prefill_done
    full = left // q  # (`divmod` and `min` without their builtin calls: once or twice a request)
    tail = left % q > 0 and inst.chunk_tail is not None and inst.chunk_tail(inst, plan)
    k = full + tail
    if k > MAX_CHUNK_RUN:
        k = MAX_CHUNK_RUN
    if k <= 1:
        return 1, False
    assert inst.chunk_horizon is not None
    k = min(k, inst.chunk_horizon(inst, plan))
    if co is not None and k > 1:
        k = min(k, co.steps_to_completion())
    if k > 1:
        k = _block_limit(inst, co, req, q, k)
    if k > 1 and inst.prefix_cache is not None and not _inserts_commute(inst, req, q, k):
        return 1, False
    return k, tail and k == full + 1


def chunk_growth(req: Request, q: int, j: int, block_size: int) -> int:
    """Blocks the prefill of a chunk run takes in its steps 1..j beyond those it held when the run began (step 0
    was reserved by the plan): a scheduler that allocates per chunk (`policies.vllm`, `reserve_prefill`) grows
    the request to cover its KV after each chunk; one that reserved the whole prompt on admission takes none.
    Step j's chunk is q tokens, or the prompt's remainder when it is the last."""
    tokens = min(req.prefill_target, req.prefill_done + q * (j + 1))
    return max(0, -(-tokens // block_size) - (req.blocks + req.shared_blocks))


def _block_limit(inst: Instance, co: Cohort | None, req: Request, q: int, k: int) -> int:
    """Most steps (<= k, >= 1) whose new blocks — the cohort's next-token slots, then the chunk's — fit in the
    free blocks: step by step, each step takes them at its plan in that order, and a shortfall there would
    change the plan (preemption), so the run stops before it."""
    free, bs = inst.allocator.free, inst.block_size
    cohort_need = co.blocks(1, k - 1) if co is not None else 0
    target, held = req.prefill_target, req.prefill_done + q * k  # `chunk_growth(req, q, k - 1, bs)`, inlined
    grown = -(-(target if target < held else held) // bs) - (req.blocks + req.shared_blocks)
    if cohort_need + (grown if grown > 0 else 0) <= free:
        if co is not None:  # the cohort's part, for the `Cohort.step` that runs all k steps (as `block_limit`)
            co.need = (co.steps, k, cohort_need)
        return k

    def need(m: int) -> int:  # blocks of steps 1..m-1
        return (co.blocks(1, m - 1) if co is not None else 0) + chunk_growth(req, q, m - 1, bs)

    lo, hi = 1, k  # need(lo) fits, need(hi) does not; both terms grow with m
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if need(mid) <= free:
            lo = mid
        else:
            hi = mid
    return lo


def _inserts_commute(inst: Instance, req: Request, q: int, k: int) -> bool:
    """With a prefix cache, stepping registers the prompt's blocks after each chunk, a chunk run once at its
    end, after the run's block takes (which may evict cached free blocks). Both end the same when none of the
    keys the run registers is cached now: a key absent now stays absent (no other request advances here during
    the run) until this request registers it, and registering never changes the free blocks."""
    st: Any = req.prefix
    if st is None:
        return True
    keys = st.keys
    m = min(min(req.prefill_done + q * k, req.prompt) // inst.block_size, len(keys))
    assert inst.prefix_cache is not None
    cache = inst.prefix_cache.cache
    return not any(key in cache for key in keys[st.upto : m])


def chunk_run(
    inst: Instance, plan: BatchPlan, co: Cohort | None, n: int, ctx: int, k: int, tail: bool = False
) -> Steps:
    """k iterations of the same shape at once — every decoder one token further each step, the same request's
    prefill one chunk further (with `tail`, the last step its shorter remainder) — priced step by step (same
    floats as stepping) and slept as one event."""
    req, q = plan.prefill[0]
    c0 = req.prefill_done
    last = req.prefill_target - c0 - q * (k - 1) if tail else q  # the last step's chunk
    priced = getattr(inst.cost, "chunk_steps", None)  # the pricing memo's exact run pricing
    if priced is not None:
        times, durations = priced(inst.t, q, c0, n, ctx, k, last)
    else:
        times, durations = _chunk_steps(inst.cost, inst.t, q, c0, n, ctx, k, last)
    if len(times) > 1:  # a run: a cut (`Instance._cut`) lowers its `k` while it sleeps
        inst.run = run = DecodeRun(times, (req, q), tail)
        yield sleep_until(inst.env, times[-1])
        ran = run.k
        inst.run = None
    else:
        yield sleep_until(inst.env, times[-1])
        ran = 1
    target = req.prefill_target
    tokens = target - c0 if tail and ran == k else q * ran
    held = c0 + q * ran  # `chunk_growth(req, q, ran - 1, block_size)`, inlined: its min, ceiling and max
    grown = -(-(target if target < held else held) // inst.block_size) - (req.blocks + req.shared_blocks)
    if grown > 0:  # the chunks' own blocks, taken by their plans step by step (counted by `kv_used_blocks` meanwhile)
        inst.allocator.take(grown)
        req.blocks += grown
    k = ran
    t_end = times[k - 1]
    inst.plan_t = times[k - 2] if k > 1 else inst.t  # where stepping planned the last step (`Instance._lagged`)
    inst.t = t_end
    inst.iterations += k
    busy = inst.busy_s
    for dt in durations if k == len(durations) else durations[:k]:  # the busy time adds up as stepping adds it
        busy += dt
    inst.busy_s = busy
    finished: list[Request] = []
    if co is not None:  # the cohort steps before the prefill that may end at the last step joins it
        itl = inst.log.itl
        new, finished = co.step(k, times[0], t_end, itl)
        if new:
            inst.allocator.take(new)
        if k > 1:
            itl.add_gaps(times, k, n)
    plan.prefill = [(req, tokens)]
    prefilled, _ = _advance_prefills(inst, plan, t_end, finished)
    inst.tokens_out += n * k + prefilled
    if finished:
        inst.finish(finished)
    if inst.steady and _onward(inst, inst.cohort):
        yield from inst.decode_steps(inst, BatchPlan(cohort=True, cohort_n=inst.cohort.n))


def _chunk_steps(
    cost: CostModel, t: float, q: int, c0: int, n: int, ctx: int, k: int, last: int
) -> tuple[list[float], list[float]]:
    """End times and durations of k chunk-run steps, each priced as stepping prices it (`MemoCost.chunk_steps`
    gives the same floats faster)."""
    times, durations = [], []
    for j in range(k):
        dt = cost.iteration([(q if j < k - 1 else last, c0 + q * j)], n, ctx + n * j)
        t = t + dt
        times.append(t)
        durations.append(dt)
    return times, durations


def _advance_prefills(
    inst: Instance, plan: BatchPlan, t_end: float, finished: list[Request]
) -> tuple[int, list[Request]]:
    """Credit the iteration's prefill chunks; a completed prefill emits a token. Returns (prefills completed,
    requests to hand off); requests that emitted their last token go to `finished`."""
    prefilled = 0
    handed = []
    itl = inst.log.itl
    cache = inst.prefix_cache
    for req, n in plan.prefill:
        req.prefill_done += n
        req.kv_tokens += n
        if req.prefix is not None and cache is not None:
            cache.insert(req)  # its full prompt blocks become shareable as they are computed
        if req.prefill_done == req.prefill_target:
            prefilled += 1
            inst.prefilling.remove(req)
            if req.generated == 0:
                req.first_token = t_end
            else:
                itl.add_one(t_end - req.last_token)
            req.generated += 1
            req.last_token = t_end
            if req.generated == req.output:
                finished.append(req)
            elif inst.handoff is not None:  # a prefill instance: decoding happens elsewhere
                handed.append(req)
            elif inst.lockstep:
                inst.cohort.join(req)
    return prefilled, handed
