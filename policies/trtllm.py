"""TensorRT-LLM's PyTorch-executor batch scheduler (`scheduler.kind: trtllm`).

What differs from Sarathi's chunked prefill is read in TensorRT-LLM's `MicroBatchScheduler::operator()`
(cpp/tensorrt_llm/batch_manager/microBatchScheduler.cpp; the PyTorch executor's `SimpleScheduler` wraps it):

- **No chunking by default** (`enable_chunked_prefill: False`, tensorrt_llm/llmapi/llm_args.py). Without a
  context-chunking config a context request is scheduled whole: its tokens (prompt, plus draft tokens if any)
  are added only if `batchNumTokens + reqNumTokens <= maxNumTokens`, and the loop **breaks** at the first one that
  does not fit (first come, first served: no later, shorter prompt jumps it).
- **Generation requests count against `max_num_tokens`** with `beam width + draft tokens` each, so with MTP
  (k draft tokens) a decoding request takes k + 1 tokens of the budget before any context is placed.
- **`max_batch_size` counts context and generation requests together** (`++scheduledReqSize >= maxBatchSize`).
- **Per attention-DP rank**: each rank runs its own executor and scheduler with its own `max_num_tokens` and
  `max_batch_size` (the ranks only allgather counts). servesim's instance is the whole group, so the decode
  tokens are spread evenly over the `dp` ranks (TensorRT-LLM hands new requests to the least-loaded rank) and
  each waiting prompt goes, in order, to the rank with the most room left; the first prompt that fits no rank
  ends admission for the iteration.

With `enable_chunked_prefill: true` the plan is Sarathi's (decodes first, then chunks within the instance's
dp x `max_num_tokens`), as TensorRT-LLM's FCFS chunking policy fills the remaining capacity in request order.

Defaults are trtllm-serve's: `max_batch_size` 2048 and `max_num_tokens` 8192 (`BuildConfig`, the defaults
`trtllm-serve` passes on), chunked prefill off. The engine's context holds (attention-DP balance, batch waiting,
policies/context_hold.py) and the admission reservation (policies/reserve.py) apply as they do under `sarathi`.

A prompt longer than `max_num_tokens` is refused by TensorRT-LLM without chunking; servesim runs it alone on a
rank that has no other context in the iteration instead, so no request is dropped and no loop hangs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from policies.context_hold import ContextHold, hold_terms
from policies.continuous import Sarathi, SarathiConfig, plan_decodes, swapped_out
from policies.reserve import Reservation, reservation
from sim.core.batch import BatchPlan, BatchScheduler, InstanceView
from sim.core.registry import SCHEDULERS
from sim.core.request import Request

MAX_BATCH_SIZE = 2048  # trtllm-serve --max_batch_size default (BuildConfig.max_batch_size)
MAX_NUM_TOKENS = 8192  # trtllm-serve --max_num_tokens default (BuildConfig.max_num_tokens)


class TrtllmConfig(BaseModel):
    """TensorRT-LLM's scheduler knobs, per attention-DP rank as the engine reads them."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["trtllm"] = "trtllm"
    max_batch_size: int = Field(default=MAX_BATCH_SIZE, ge=1, description="requests per rank per iteration")
    max_num_tokens: int = Field(default=MAX_NUM_TOKENS, ge=1, description="tokens per rank per iteration")
    enable_chunked_prefill: bool = Field(default=False, description="chunk prompts (TensorRT-LLM default: off)")


def rank_room(rank_tokens: int, dp: int, gen_tokens: int) -> list[int]:
    """The tokens each of `dp` ranks has left for contexts after its share of `gen_tokens` generation tokens
    (spread evenly, the remainder one each on the first ranks); never below 0."""
    base, extra = divmod(gen_tokens, dp)
    return [max(0, rank_tokens - base - (1 if i < extra else 0)) for i in range(dp)]


class Trtllm(Sarathi):
    """Every decoding request, then whole prompts in arrival order while one fits a rank's token room."""

    def __init__(
        self, cfg: TrtllmConfig, dp: int = 1, hold: ContextHold | None = None, reserve: Reservation | None = None
    ) -> None:
        dp = max(1, dp)
        inner = SarathiConfig(max_num_seqs=cfg.max_batch_size * dp, token_budget=cfg.max_num_tokens * dp)
        super().__init__(inner, hold, reserve)
        self.dp = dp
        self.rank_tokens = cfg.max_num_tokens
        self.chunked = cfg.enable_chunked_prefill

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        if self.chunked:
            return super().schedule(inst, now)
        plan = BatchPlan()
        if not inst.decode_all(plan):
            plan_decodes(inst, inst.decoding(), plan)
        if self.hold is not None and self.hold.holds(inst, plan.decode_count):
            return plan  # context requests wait this iteration: decodes only
        spec = getattr(inst, "speculation", None)  # MTP / draft: k + 1 tokens per generation request
        per_gen = spec.lookahead if spec is not None else 1
        room = rank_room(self.rank_tokens, self.dp, plan.decode_count * per_gen)
        busy = [False] * self.dp  # a rank that already holds a context this iteration
        waiting, running = inst.waiting, inst.running
        if waiting and plan.preempted == 0 and swapped_out(waiting[0]):
            self._swap_in(inst, plan, room, busy, per_gen)
        for req in inst.prefilling:  # (a mid-prompt request not yet planned: its remainder runs whole)
            if all(r is not req for r, _ in plan.prefill):
                self._place(plan, req, req.prefill_target - req.prefill_done, room, busy)
        reserve = self.reserve
        if reserve is not None:
            reserve.begin(inst, plan)
        while waiting and len(running) < self.max_seqs:
            req = waiting[0]
            if swapped_out(req) or not inst.can_admit(req) or (reserve is not None and not reserve.admits(inst, req)):
                break
            if not self._fits(req.prefill_target, room, busy):
                break  # MicroBatchScheduler: the first context that does not fit ends the loop
            inst.admit(req)
            if reserve is not None:
                reserve.admitted(req)
            self._place(plan, req, req.prefill_target, room, busy)
        return plan

    def _swap_in(self, inst: InstanceView, plan: BatchPlan, room: list[int], busy: list[bool], per_gen: int) -> None:
        """Bring swapped-out requests at the head of the queue back while they fit, charging their tokens to the
        ranks' room: a decode takes `per_gen` tokens on the rank with the most room, a mid-prompt request's
        remainder is placed whole as a context (TensorRT-LLM has no host swap in its scheduler: `LlmRequest::pause`
        (cpp/include/tensorrt_llm/batch_manager/llmRequest.h) folds the generated tokens into the prompt and the
        request comes back as a context request, scheduled whole like any other), or it waits."""
        waiting = inst.waiting
        while waiting and len(inst.running) < self.max_seqs:
            req = waiting[0]
            if not swapped_out(req) or not inst.can_admit(req):
                return
            if req.in_prefill:
                n = req.prefill_target - req.prefill_done
                if not self._fits(n, room, busy):
                    return
                inst.admit(req)
                self._place(plan, req, n, room, busy)
                continue
            i = max(range(self.dp), key=room.__getitem__)
            if room[i] < per_gen:
                return
            inst.admit(req)
            if not inst.reserve_decode_slot(req):
                inst.preempt(req)
                plan.preempted += 1
                return
            plan.decode.append(req)
            room[i] -= per_gen

    def _fits(self, n: int, room: list[int], busy: list[bool]) -> bool:
        i = max(range(self.dp), key=room.__getitem__)
        return n <= room[i] or (n > self.rank_tokens and not all(busy))

    def _place(self, plan: BatchPlan, req: Request, n: int, room: list[int], busy: list[bool]) -> None:
        """Put a whole prompt of n tokens on the rank with the most room (a prompt above a rank's budget on a
        rank with no context yet)."""
        fit = [i for i in range(self.dp) if room[i] >= n]
        if fit:
            i = max(fit, key=room.__getitem__)
        else:
            free = [i for i in range(self.dp) if not busy[i]] or list(range(self.dp))
            i = max(free, key=room.__getitem__)
        room[i] = max(0, room[i] - n)
        busy[i] = True
        plan.prefill.append((req, n))

    def chunk_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        """Whole prompts finish in their iteration: no run of identical chunk plans (chunked: Sarathi's)."""
        return super().chunk_horizon(inst, plan) if self.chunked else 1


@SCHEDULERS.register("trtllm", TrtllmConfig, whole_prompts=True, admission_reserve=True)
def _trtllm(
    cfg: TrtllmConfig, engine: object = None, attention_dp: int = 1, model: object = None, **_: object
) -> BatchScheduler:
    """TensorRT-LLM's PyTorch scheduler: whole prompts within max_num_tokens per rank (decode tokens counted)"""
    dp = max(1, attention_dp)
    terms = hold_terms(engine, dp, cfg.max_num_tokens)
    return Trtllm(cfg, dp, ContextHold(terms) if terms.active else None, reservation(engine, model))
