"""vLLM V1's scheduler (`kind: vllm`): one token budget per step shared by decodes and chunked prefills.

Each step (vllm/v1/core/sched/scheduler.py) first serves the running requests in order — every decode
takes one token of the budget, a request still in its prefill takes a chunk of what is left — then, if
nothing was preempted, admits waiting requests in FCFS order while the budget and `max_num_seqs` allow,
each with a chunk of its prompt. When a running request needs a KV block that is not there, the newest
running request is preempted and recomputed later (V1's only preemption mode). Prefix caching is on by
default (full-block hashing: a hit skips those blocks' prefill; `sim.cluster.prefix_cache`, keyed by the
trace's block ids or a shared system prompt) and `enable_prefix_caching: false` turns it off. A request
whose prompt + output exceeds `max_model_len` is rejected (`exceeds_context`), as the API server does.

Defaults are `vllm serve`'s (vllm/engine/arg_utils.py `get_batch_defaults`, usage context
OPENAI_API_SERVER): on a GPU with at least 70 GiB that is not an A100, `max_num_batched_tokens` 8192 and
`max_num_seqs` 1024; otherwise 2048 and 256. vLLM requires `max_num_batched_tokens >= max_num_seqs`.

KV capacity, with `kv_cache.reserve_gb` unset, is vLLM's profiled budget (`sim.costmodel.kv_memory`): memory ×
utilisation − weights − activation at `max_num_batched_tokens` − CUDA-graph pool − non-torch memory.

KV blocks are allocated per scheduled chunk, as V1's `allocate_slots(request, num_new_tokens)` does: a new
request is admitted when its first chunk's blocks are free (above `kv_cache.watermark`), and each later chunk
takes its blocks when it is scheduled. A running prefill whose chunk finds no free blocks preempts the newest
prefilling request not yet planned this step (recompute, or swap with `kv_cache.preemption: swap`); if there is
none, the request itself is preempted, as V1 preempts the lowest-priority running request even when that is the
one asking. Schedulers other than `vllm` reserve the whole prompt on admission.

Chunk runs (`sim.core.steps.chunk_run`, Sarathi's `chunk_horizon`) fast-forward this scheduler too: the engine
stops a run before the step whose cohort slots and chunk blocks (`steps.chunk_growth`) would not fit, so no
step of it could have preempted, and takes the chunks' blocks as those steps' plans would.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.continuous import Sarathi, plan_decodes, swap_in, swapped_out
from policies.reserve import Reservation, reservation
from sim.core.batch import BatchPlan, BatchScheduler, InstanceView
from sim.core.registry import SCHEDULERS
from sim.core.request import Request

GIB = 1024**3


class VLLMConfig(BaseModel):
    """vLLM V1: decodes first, then chunked prefills, in one token budget; prefix caching on."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["vllm"] = "vllm"
    max_num_seqs: int | None = Field(
        default=None, ge=1, description="most running requests (unset: 1024 on >= 70 GiB non-A100 GPUs, else 256)"
    )
    max_num_batched_tokens: int | None = Field(
        default=None, ge=1, description="token budget per step (unset: 8192 on >= 70 GiB non-A100 GPUs, else 2048)"
    )
    enable_prefix_caching: bool = Field(default=True, description="reuse full KV blocks of shared prompt prefixes")
    max_model_len: int | None = Field(
        default=None, ge=1, description="reject prompt + output longer than this (unset: the model's context)"
    )

    @model_validator(mode="after")
    def _budget_covers_seqs(self) -> VLLMConfig:
        s, t = self.max_num_seqs, self.max_num_batched_tokens
        if s is not None and t is not None and t < s:
            raise ValueError(f"max_num_batched_tokens ({t}) must be >= max_num_seqs ({s}), as vLLM requires")
        return self

    def resolved(self, gpu: Any = None) -> tuple[int, int]:
        """(max_num_seqs, max_num_batched_tokens) with `vllm serve`'s defaults for this GPU."""
        big = gpu is not None and gpu.memory_bytes >= 70 * GIB and "a100" not in gpu.name.lower()
        seqs = self.max_num_seqs if self.max_num_seqs is not None else (1024 if big else 256)
        tokens = self.max_num_batched_tokens if self.max_num_batched_tokens is not None else (8192 if big else 2048)
        return seqs, max(tokens, seqs)


class VLLMScheduler(Sarathi):
    """Sarathi's step plan (decodes, running prefill chunks, then new prompts, in one budget) with V1's knobs
    and V1's per-chunk block allocation."""

    def __init__(self, cfg: VLLMConfig, gpu: Any = None, reserve: Reservation | None = None) -> None:
        self.cfg = cfg
        self.max_seqs, self.budget = cfg.resolved(gpu)
        self.reserve = reserve  # another engine's reservation, when its preset runs under this scheduler

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        plan = BatchPlan()
        if not inst.decode_all(plan):  # a decode short of a block preempts the newest running request, as
            plan_decodes(inst, inst.decoding(), plan, order=inst.running)  # V1's running.pop(), prefills included
        left = self.budget - plan.decode_count
        if plan.preempted == 0 and inst.waiting:
            left = swap_in(inst, plan, self.max_seqs, left)
        if left > 0 and inst.prefilling:
            left = self._running_prefills(inst, plan, left)
        waiting, running = inst.waiting, inst.running
        reserve = self.reserve
        if reserve is not None:
            reserve.begin(inst, plan)
        # V1 admits no new request in a step that preempted one
        while plan.preempted == 0 and left > 0 and waiting and len(running) < self.max_seqs:
            req = waiting[0]
            if swapped_out(req) or not inst.can_admit(req, left):
                break
            if reserve is not None and not reserve.admits(inst, req):
                break
            inst.admit(req, left)  # blocks of the first chunk only (after any prefix-cache hit)
            if reserve is not None:
                reserve.admitted(req)
            n = min(req.prefill_target - req.prefill_done, left)
            plan.prefill.append((req, n))
            left -= n
        return plan

    @staticmethod
    def _running_prefills(inst: InstanceView, plan: BatchPlan, left: int) -> int:
        """The next chunk of each running prefill in admission order, each taking its blocks now."""
        planned = {id(r) for r, _ in plan.prefill}  # swapped back in mid-prefill: planned by swap_in
        order = [r for r in inst.prefilling if id(r) not in planned]
        i, end = 0, len(order)
        while i < end and left > 0:
            req: Request = order[i]
            n = min(req.prefill_target - req.prefill_done, left)
            while not inst.reserve_prefill(req, n) and end > i + 1:
                end -= 1  # the newest prefill not yet planned gives its blocks back
                inst.preempt(order[end])
                plan.preempted += 1
            if not inst.reserve_prefill(req, n):
                inst.preempt(req)  # nothing newer to take from: V1 preempts the request itself
                plan.preempted += 1
                break
            plan.prefill.append((req, n))
            left -= n
            i += 1
        return left


@SCHEDULERS.register("vllm", VLLMConfig, prefill_chunk="max_num_batched_tokens", admission_reserve=True)
def _vllm(cfg: VLLMConfig, gpu: Any = None, engine: object = None, model: object = None, **_: object) -> BatchScheduler:
    """vLLM V1: shared token budget, chunked prefill, prefix caching, recompute preemption"""
    return VLLMScheduler(cfg, gpu, reservation(engine, model))
