"""Admission reservations for future output tokens (`serving_engine.admission_reserve`), obeyed by the `sarathi` and
`vllm` schedulers on colocated instances.

The clients send each request's output length as `max_tokens` (with `ignore_eos`), so an engine knows how much KV a
request will hold at its end. vLLM does not look ahead: it admits on the prompt's blocks and preempts by recompute
when KV runs out (`none`). Two engines reserve:

- **`guaranteed_no_evict`** (TensorRT-LLM's default `capacity_scheduler_policy`, tensorrt_llm/llmapi/llm_args.py;
  the check in batch_manager/capacityScheduler.cpp): available = free blocks - sum over running requests of the
  blocks they still need to reach prompt + max_tokens (`KVCacheManager::getRemainingBlocksToCompletion`); a waiting
  request starts only if the blocks of its whole prompt + max_tokens fit in what is available, which then shrinks by
  them. With every running request holding at most its own blocks that is: the blocks of prompt + output summed over
  the running and the new request stay within the KV capacity (less servesim's watermark). Prefix-cache sharing is
  not credited (a shared block counts once per request: conservative, where TensorRT-LLM credits reuse).
- **`sglang_new_token_ratio`** (SGLang's `PrefillAdder`, python/sglang/srt/managers/schedule_policy.py at
  sgl-project/sglang@ad0119f; scheduler constants from srt/environ.py): a prompt is admitted while its uncomputed
  tokens + min(output left, `clip_max_new_tokens`) stay below the free KV tokens less, per running request,
  min(output left, clip) x new_token_ratio, less the tokens (prompt + clipped output, counted whole) of the requests
  admitted earlier in the same pass. The ratio starts at `init_new_token_ratio`, falls by (init - init x
  `min_new_token_ratio_factor`) / `new_token_ratio_decay_steps` per step to its floor, goes back to init when the
  instance is idle, and after a retraction (a preemption here) becomes min(1, (decoded + `retract_decode_steps` x n)
  / (sum of max_new_tokens + 1)) over the n requests still running (`ScheduleBatch.retract_decode`).
  Read approximately: SGLang decays only on decode batches and servesim counts every iteration (it mixes prefill
  chunks into decode steps); a chunked prompt still prefilling is counted like a running request; servesim preempts
  the newest request, SGLang retracts by its own order.
- **`sglang_ignore_eos`**: SGLang with the radix cache disabled (`--disable-radix-cache`, as most InferenceX SGLang
  recipes launch it) serving `ignore_eos` requests (the benchmark client's `--ignore-eos`) takes
  `PrefillAdder.add_one_req_ignore_eos` instead (same file and commit): every output counted in full, and the
  requests' completions in order. Sort the running requests, those admitted in the pass and the candidate by output
  tokens left; the candidate goes only if, for each i in that order, free tokens (after the candidate's prompt) +
  the tokens held by the i requests that finish first - (tokens left of the i-th) x (requests not yet finished)
  stays above 1 token per unfinished request (`IGNORE_EOS_RESERVE_TOKENS`).

Both SGLang paths latch: a prompt held back sets `running_batch.batch_is_full` (scheduler.py
`get_new_batch_prefill`, on `AddReqResult.NO_TOKEN`), and no prompt is tried again until the running batch shrinks
(a request finishes, `update_running_batch`) or a retraction; TensorRT-LLM checks again every iteration, but its
reservations change only when a request finishes. So for every kind the decision can change only at a completion or
a preemption, and fast-forward runs (which a completion ends while someone waits) stay exact.

Disaggregated prefill and decode instances keep no reservation (not modelled: their requests arrive or leave with
their KV). An instance with nothing running admits its head whatever the reservation says, as both engines do
(a request that fits the KV alone is never held forever; one that does not is rejected on arrival,
`exceeds_kv_cache`). A reservation only holds requests back: KV is still taken and checked by the allocator.
"""

from __future__ import annotations

import bisect
from typing import Any, Protocol

from sim.core.batch import UNBOUNDED, BatchPlan, InstanceView
from sim.core.request import Request


def _colocated(inst: InstanceView) -> bool:
    """Whether `inst` keeps a reservation (disaggregated pools keep none: module doc)."""
    return getattr(inst, "role", "colocated") == "colocated"


def _running(inst: InstanceView) -> list[Request]:
    """Every running request with exact fields (decoding members synced, then those still prefilling)."""
    return inst.decoding() + list(inst.prefilling)


class Reservation(Protocol):
    """One instance's admission reservation: `begin` once per plan (before any admission), `admits` per candidate,
    `admitted` after each admission, `horizon` how many decode steps a plan that held a request back stays valid."""

    blocked: bool

    def begin(self, inst: InstanceView, plan: BatchPlan) -> None: ...

    def admits(self, inst: InstanceView, req: Request) -> bool: ...

    def admitted(self, req: Request) -> None: ...

    def horizon(self) -> int: ...


class NoEvict:
    """TensorRT-LLM GUARANTEED_NO_EVICT: the blocks of every request's whole prompt + output fit at once.

    Sliding-window layers: TensorRT-LLM keeps one block pool per attention window and reserves in each
    (`NoEvictScheduledBlocksManager`, batch_manager/scheduledBlocksManager.h, over
    `getNumFreeBlocksPerWindowSize`); `KVCacheManager::getRemainingBlocksToCompletion(req, windowSize)`
    (batch_manager/kvCacheManager.cpp) counts ceil(min(prompt + max_new_tokens, window) / tokens_per_block) blocks
    there (temporary attention window and sink tokens 0: no chunked-context extension, no attention sinks). servesim
    keeps one pool whose blocks hold a token on every attention layer (`kv_capacity`, local layers charged in full),
    so a request's reservation is that count per layer kind weighted by its layers: with `full` F layers and `local`
    L layers of window W, ceil((full x blocks(P + O) + local x blocks(min(P + O, W))) / (full + local)). Read
    approximately: one pool for the memory TensorRT-LLM splits between its window pools."""

    def __init__(self, full: int = 1, local: int = 0, window: int | None = None) -> None:
        self.full, self.local = full, local if window is not None else 0
        self.window = window if window is not None else 0
        self.blocked = False
        self.total: int | None = None  # blocks reserved by the running requests (summed on first use per plan)
        self.active = True
        self.inst: InstanceView | None = None

    def begin(self, inst: InstanceView, plan: BatchPlan) -> None:
        self.blocked = False
        self.total = None
        self.active = _colocated(inst)
        self.inst = inst

    def _need(self, inst: InstanceView, req: Request) -> int:
        whole = inst.blocks_for(req.prompt + req.output)
        if not self.local:
            return whole
        windowed = inst.blocks_for(min(req.prompt + req.output, self.window))
        return -(-(self.full * whole + self.local * windowed) // (self.full + self.local))

    def admits(self, inst: InstanceView, req: Request) -> bool:
        if not self.active or not inst.running:  # (nothing running, admitted this pass included: the head goes)
            return True
        if self.total is None:
            self.total = sum(self._need(inst, r) for r in inst.running)
        if self.total + self._need(inst, req) <= inst.num_blocks - inst.watermark_blocks:
            return True
        self.blocked = True
        return False

    def admitted(self, req: Request) -> None:
        if self.total is not None and self.inst is not None:
            self.total += self._need(self.inst, req)

    def horizon(self) -> int:
        return UNBOUNDED  # the reservations change only when a request completes, which ends any run


class _Latch:
    """SGLang's `batch_is_full`: set when a prompt is held back, cleared when the running batch shrinks or a
    request is retracted (module doc)."""

    full = False
    last_n = 0  # running requests after the previous plan's admissions

    def _unlatch(self, inst: InstanceView, plan: BatchPlan) -> None:
        if plan.preempted or len(inst.running) < self.last_n:
            self.full = False
        self.last_n = len(inst.running)

    def _hold(self) -> bool:
        self.full = self.blocked = True
        return False


class NewTokenRatio(_Latch):
    """SGLang's PrefillAdder: outputs reserved at a decaying `new_token_ratio` (module doc)."""

    def __init__(self, init: float, min_factor: float, decay_steps: int, clip: int, retract_steps: int) -> None:
        self.init = init
        self.min = init * min_factor
        self.decay = (self.init - self.min) / decay_steps
        self.clip = clip
        self.retract_steps = retract_steps
        self.ratio = init
        self.seen = 0  # the instance's iteration count when the ratio was last brought up to date
        self.blocked = False
        self.room: float | None = None
        self.active = True

    def _left(self, req: Request) -> int:
        return min(max(req.output - req.generated, 0), self.clip)

    def begin(self, inst: InstanceView, plan: BatchPlan) -> None:
        steps, self.seen = inst.iterations - self.seen, inst.iterations
        self.blocked = False
        self.room = None
        self.active = _colocated(inst)
        self._unlatch(inst, plan)
        if not inst.running:
            self.ratio = self.init  # idle: SGLang re-initialises the ratio
        elif plan.preempted:
            reqs = _running(inst)
            decoded = sum(r.generated for r in reqs)
            max_new = sum(r.output for r in reqs)
            self.ratio = min(1.0, (decoded + self.retract_steps * len(reqs)) / (max_new + 1))
        else:
            self.ratio = max(self.min, self.ratio - self.decay * steps)

    def admits(self, inst: InstanceView, req: Request) -> bool:
        if not self.active or not inst.running:
            return True
        if self.full:
            return self._hold()
        if self.room is None:  # (first candidate of the plan: the room from what runs now)
            reserved = sum(self._left(r) for r in _running(inst)) * self.ratio
            self.room = inst.free_blocks * inst.block_size - reserved
        if (req.prefill_target - req.prefill_done) + self._left(req) < self.room:
            return True
        return self._hold()

    def admitted(self, req: Request) -> None:
        self.last_n += 1
        if self.room is not None:
            self.room -= (req.prefill_target - req.prefill_done) + self._left(req)

    def horizon(self) -> int:
        return UNBOUNDED  # latched until a completion or a preemption, both of which end a run


class IgnoreEos(_Latch):
    """SGLang's `add_one_req_ignore_eos`: outputs in full, completions in order (module doc)."""

    def __init__(self) -> None:
        self.blocked = False
        self.states: list[tuple[int, int]] | None = None  # (tokens left, tokens held), sorted, for the plan
        self.active = True

    @staticmethod
    def _state(req: Request) -> tuple[int, int]:
        return req.output - req.generated, req.prompt + req.generated

    def begin(self, inst: InstanceView, plan: BatchPlan) -> None:
        self.blocked = False
        self.states = None
        self.active = _colocated(inst)
        self._unlatch(inst, plan)

    def admits(self, inst: InstanceView, req: Request) -> bool:
        if not self.active or not inst.running:
            return True
        if self.full:
            return self._hold()
        if self.states is None:
            self.states = sorted(s for s in map(self._state, _running(inst)) if s[0] > 0)
        states = list(self.states)
        bisect.insort(states, self._state(req))
        free = inst.free_blocks * inst.block_size - inst.blocks_for(req.prefill_target - req.prefill_done) * (
            inst.block_size
        )
        freed, n = 0, len(states)
        for i, (left, held) in enumerate(states):
            if free + freed - left * (n - i) <= n - i:
                self.blocked = True
                return False
            freed += held
        return True

    def admitted(self, req: Request) -> None:
        if self.states is not None:
            bisect.insort(self.states, self._state(req))

    def horizon(self) -> int:
        return 1  # free tokens move by whole blocks: a held prompt is looked at again after each step


def reservation(engine: Any, model: Any = None) -> Reservation | None:
    """The reservation a `serving_engine` section asks for (None: no engine, or `none`); `model` (a ModelSpec)
    gives TensorRT-LLM's per-window counts their full and sliding-window layers."""
    kind = getattr(engine, "admission_reserve", "none") if engine is not None else "none"
    if kind == "guaranteed_no_evict":
        window = getattr(model, "sliding_window", None)
        if model is None or window is None:
            return NoEvict()
        return NoEvict(model.layer_count("F"), model.layer_count("L"), int(window))
    if kind == "sglang_ignore_eos":
        return IgnoreEos()
    if kind == "sglang_new_token_ratio":
        return NewTokenRatio(
            float(engine.init_new_token_ratio),
            float(engine.min_new_token_ratio_factor),
            int(engine.new_token_ratio_decay_steps),
            int(engine.clip_max_new_tokens),
            int(engine.retract_decode_steps),
        )
    return None
