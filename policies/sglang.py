"""SGLang's scheduler (`scheduler.kind: sglang`): prefill batches alone, prefill first, chunked.

Read in sgl-project/sglang@0003215cf1464f44b389cd0b18d0b4c56f2a3da6, python/sglang/srt/managers/scheduler.py:

- **Prefill first.** `Scheduler.get_next_batch_to_run` merges the last prefill batch into the running batch, then
  asks `get_new_batch_prefill` for a new one; if there is one it runs ("Run prefill first if possible"), and only
  otherwise does `update_running_batch` form the decode batch of every running request.
- **A prefill batch**, `_get_new_batch_prefill_raw`: none when the running batch is latched full
  (`batch_is_full`) or nobody waits, unless a chunked request is in flight. A `PrefillAdder` (schedule_policy.py)
  gets the `chunked_prefill_size` and `max_prefill_tokens` budgets; the request still being chunked goes first
  (`add_chunked_req`), then the waiting queue in order (`add_one_req`) until one is refused: a prompt above the
  chunk left is cut to it and becomes the next `chunked_req` (one at a time), a prompt refused for memory latches
  `batch_is_full` (policies/reserve.py models that admission), and `max_running_requests` bounds the batch
  (`get_num_allocatable_reqs`).
- **No mixing by default.** The decoders join the prefill batch only with `--enable-mixed-chunk`
  (`is_mixed_chunk`: `mix_with_running`), and then the adder's budgets are first reduced by one token per running
  request (`running_bs if self.is_mixed_chunk else 0`). That mixed plan is Sarathi's (decodes first, then chunks,
  one budget), which this kind runs when `enable_mixed_chunk` is set.
- **Retraction** happens in the decode batch: `update_running_batch` calls `retract_decode` when
  `check_decode_mem` fails and resets the new-token ratio; otherwise the ratio decays one step per decode batch.

servesim's version: a plan is a prefill batch (the running prefill's next chunk, then new prompts, within
`chunked_prefill_size`, through the same `fill_prefills` as `sarathi`, so admission, the engine's reservation
and the per-rank chunks of attention DP, policies/dp_chunks.py, are the same) when that batch is not empty;
otherwise every decoder, preempting the newest by recompute when a slot is short (`plan_decodes`, as `sarathi`).
Not modelled: `max_prefill_tokens` (16384 by default, above the 8192 chunk, so it binds only where a chunk is
set above it; servesim uses the chunk); the ratio still decays per iteration, prefill batches included (reserve.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from policies.context_hold import RecvSkipper, hold_terms
from policies.continuous import RecvSarathi, Sarathi, SarathiConfig, plan_decodes, swap_in, swapped_out
from policies.dp_chunks import RankChunks, rank_chunks
from policies.reserve import Reservation, reservation
from sim.core.batch import BatchPlan, BatchScheduler, InstanceView
from sim.core.registry import SCHEDULERS

CHUNKED_PREFILL_SIZE = 8192  # ServerArgs: 8192 on H100/H200-class GPUs (coverage_recipes_sglang_mem.py reads it)
MAX_RUNNING_REQUESTS = 1024  # servesim's bound; SGLang derives its own from the req-to-token pool size


class SglangConfig(BaseModel):
    """SGLang's scheduler knobs (`sglang.launch_server` flags of the same names)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["sglang"] = "sglang"
    chunked_prefill_size: int = Field(default=CHUNKED_PREFILL_SIZE, ge=1, description="prompt tokens per step")
    max_running_requests: int = Field(default=MAX_RUNNING_REQUESTS, ge=1, description="most requests running")
    enable_mixed_chunk: bool = Field(default=False, description="decoders ride in prefill batches (SGLang: off)")


class Sglang(Sarathi):
    """A prefill batch alone whenever one can be formed (the chunked prompt first), else a decode batch."""

    def __init__(
        self,
        cfg: SarathiConfig,
        reserve: Reservation | None = None,
        ranks: RankChunks | None = None,
        mixed: bool = False,
    ) -> None:
        super().__init__(cfg, None, reserve, ranks)  # (no context holds: their terms are TensorRT-LLM's)
        self.mixed = mixed

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        if self.mixed:
            return super().schedule(inst, now)
        waiting = inst.waiting
        if inst.prefilling or (waiting and not swapped_out(waiting[0])):
            plan = BatchPlan()
            self.fill_prefills(inst, plan, self.budget)
            if plan.prefill:
                return plan
        plan = BatchPlan()
        if not inst.decode_all(plan):
            plan_decodes(inst, inst.decoding(), plan)
        if plan.preempted and self.reserve is not None:
            self.reserve.begin(inst, plan)  # a retraction resets SGLang's ratio and unlatches (reserve.py)
        elif waiting and swapped_out(waiting[0]):  # (`kv_cache.preemption: swap`; SGLang retracts by recompute)
            swap_in(inst, plan, self.max_seqs, self.budget - plan.decode_count)
        return plan

    def chunk_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        """A chunk run's steps carry every decoder (`steps.chunk_run`): only the mixed plan has them."""
        return super().chunk_horizon(inst, plan) if self.mixed else 1


class RecvSglang(RecvSarathi, Sglang):
    """`Sglang` behind SGLang's receive interval (`RecvSarathi`'s unseen arrivals, over this kind's plans)."""

    def __init__(
        self,
        cfg: SarathiConfig,
        recv: RecvSkipper,
        reserve: Reservation | None = None,
        ranks: RankChunks | None = None,
        mixed: bool = False,
    ) -> None:
        Sglang.__init__(self, cfg, reserve, ranks, mixed)
        self.recv = recv
        self.steady_decode = False


@SCHEDULERS.register("sglang", SglangConfig, prefill_chunk="chunked_prefill_size", admission_reserve=True)
def _sglang(
    cfg: SglangConfig, engine: object = None, attention_dp: int = 1, model: object = None, **_: object
) -> BatchScheduler:
    """SGLang: prefill batches first and alone (chunked), decode batches otherwise; --enable-mixed-chunk mixes"""
    inner = SarathiConfig(max_num_seqs=cfg.max_running_requests, token_budget=cfg.chunked_prefill_size)
    ranks = rank_chunks(engine, cfg.chunked_prefill_size, attention_dp)
    recv = hold_terms(engine, attention_dp, cfg.chunked_prefill_size).recv_interval
    reserve = reservation(engine, model)
    if recv > 1:
        return RecvSglang(inner, RecvSkipper(recv), reserve, ranks, cfg.enable_mixed_chunk)
    return Sglang(inner, reserve, ranks, cfg.enable_mixed_chunk)
