"""The per-request decode reference: the oracle the cohort path (`sim.core.steps.decode_run`) is proved against.

Every decoding request's fields advance every step and each request's next KV block is found by scanning the
batch — O(batch) Python work per step, obviously right. `per_request_decoding()` makes every instance built
inside it use this path for decode-only plans, and plan request by request (no lockstep cohort), which is what
the product did with `engine.cohort_decoding: false` before the per-request path left it.
"""

from __future__ import annotations

import bisect
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import simpy

import sim.cluster.pools
from sim.core.batch import BatchPlan
from sim.core.instance import Instance
from sim.core.late import Waitable, sleep_until
from sim.core.request import Request
from sim.core.steps import DecodeRun


class _Run(DecodeRun):
    __slots__ = ("decode",)

    def __init__(self, decode: list[Request], times: list[float]) -> None:
        self.decode = decode
        self.times = times
        self.k = len(times)
        self.chunk = None
        self.tail = False


def _block_limit(inst: Instance, decode: list[Request], k: int) -> int:
    """Largest number of steps (≤ k) whose new KV blocks fit in the free blocks."""
    bs = inst.block_size
    spare = np.fromiter(
        ((r.blocks + r.shared_blocks) * bs - r.kv_tokens for r in decode), dtype=np.int64, count=len(decode)
    )
    # a request with e = spare slots needs a new block at steps e+1, e+1+bs, ...; step 1 is reserved
    counts = np.bincount(spare, minlength=bs + 1)
    s = np.arange(1, k + 1)
    need = np.where(s >= 2, counts[(s - 2) % bs + 1], 0)
    over = np.flatnonzero(np.cumsum(need) > inst.allocator.free)
    return int(over[0]) if over.size else k  # steps before the first shortfall (index = s - 1)


def per_request_decode(inst: Instance, plan: BatchPlan) -> Generator[Waitable, Any, None]:
    """k decode-only steps (k = 1 unless fast-forwarding), request by request; step 1's slots are reserved."""
    decode = plan.decode
    n = len(decode)
    k = 1
    ctx0 = 0
    k_max = 1 << 62
    for r in decode:  # one pass: context sum and steps to the first completion
        ctx0 += r.kv_tokens
        k_max = min(k_max, r.output - r.generated)
    if inst.fast_forward and plan.preempted == 0 and k_max > 1 and not inst.one_step:
        k = min(k_max, inst.scheduler.decision_horizon(inst, plan))
        if n * (-(-k // inst.block_size)) > inst.allocator.free:  # blocks might run short within k steps
            k = _block_limit(inst, decode, k)
    if inst.host.pending:
        k = 1  # swap traffic lengthens this step only
    durations = inst.cost.decode_run(n, ctx0 + n * np.arange(1, k + 1, dtype=np.int64))
    if inst.host.pending:
        durations = durations.copy()
        durations[0] += inst.host.take()
    times = np.cumsum(np.concatenate(([inst.t], durations)))[1:]
    run = _Run(decode, times.tolist())  # (the same floats; a list, as `DecodeRun.times` is typed and compiled)
    env = inst.env
    if k > 1:
        inst.run = run
        try:
            yield sleep_until(env, float(times[-1]))
        except simpy.Interrupt:
            while True:  # finish the step in flight
                try:
                    yield sleep_until(env, float(times[run.k - 1]))
                    break
                except simpy.Interrupt:
                    continue
        inst.run = None
    else:
        yield sleep_until(env, float(times[0]))
    k = run.k
    t_end = float(times[k - 1])
    if inst.tracer is not None:
        inst.tracer.decode_run(inst.index, inst.t, t_end, k, n)
    inst.t = t_end
    inst.iterations += k
    inst.busy_s += float(durations[:k].sum())
    inst.tokens_out += n * k
    _advance(inst, decode, k, t_end, times)


def _advance(inst: Instance, decode: list[Request], k: int, t_end: float, times: np.ndarray) -> None:
    """Every decoder emits k tokens; new blocks are taken as each crosses a block boundary."""
    bs = inst.block_size
    first = float(times[0])
    finished = []
    last_seen: dict[float, int] = {}  # previous token times: pooled gaps per distinct value
    new_blocks = 0
    for req in decode:
        last_seen[req.last_token] = last_seen.get(req.last_token, 0) + 1
        req.generated += k
        req.kv_tokens += k
        need = -(-req.kv_tokens // bs) - req.blocks - req.shared_blocks
        if need > 0:
            new_blocks += need
            req.blocks += need
        req.last_token = t_end
        if req.generated == req.output:
            finished.append(req)
    inst.allocator.take(new_blocks)
    itl = inst.log.itl
    for lt, cnt in last_seen.items():
        itl.add_one(first - lt, cnt)
    if k > 1:
        itl.add(times[1:k] - times[: k - 1], len(decode))
    inst.finish(finished)


class PerRequestInstance(Instance):
    """An instance on the per-request reference: no lockstep cohort, decode runs request by request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # per object, not a class attribute: the compiled core (`sim.core.native`) keeps `decode_steps` in the object
        self.decode_steps = per_request_decode
        self.lockstep = False  # lockstep schedulers then plan request by request (`decode_all` says no)
        self.chunk_horizon = None  # and every mixed iteration is its own step

    def kv_used_blocks(self, before_now: bool = False) -> int:
        """As `BatchView.kv_used_blocks`: `before_now` (the timeline's samples) leaves a step ending now in flight."""
        used = self.allocator.used
        run = self.run
        if run is not None:
            assert isinstance(run, _Run)
            behind = (bisect.bisect_left if before_now else bisect.bisect_right)(run.times, self.env.now, 0, run.k)
            done = min(behind + 1, run.k)
            used += sum(max(0, self.blocks_for(r.kv_tokens + done) - r.blocks - r.shared_blocks) for r in run.decode)
        return used

    def exact_kv(self, req: Request) -> int:
        kv = req.kv_tokens
        run = self.run
        if run is not None and req in run.decode:  # type: ignore[attr-defined]
            kv += bisect.bisect_right(run.times, self.env.now, 0, run.k)
        return kv


@contextmanager
def per_request_decoding() -> Iterator[None]:
    """Instances built inside use the per-request reference (`sim.run`, `Simulation`)."""
    saved = sim.cluster.pools.Instance
    sim.cluster.pools.Instance = PerRequestInstance  # type: ignore[misc]
    try:
        yield
    finally:
        sim.cluster.pools.Instance = saved  # type: ignore[misc]
