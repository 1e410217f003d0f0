"""Overlap admission: which engines plan one step ahead of the GPU, and so admit a new prompt one step later.

An engine whose loop schedules and launches step N+1 before step N's results are back cannot put a prompt that
arrives while step N runs into step N+1: that step was planned already. The prompt joins step N+2, one step later
than in a loop that plans at each step's end. The rule lives in the instance (`sim.core.instance.Instance._lagged`);
here is the YAML field (`serving_engine.overlap_admission`, mixed into `sim.costmodel.engine.ServingEngineConfig`)
and, per engine preset, where its code shows the overlap. It is no price: it changes when a prompt is admitted,
and applies with the physical cost models only, like the engine's other terms (`linear` is an exact service time).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

# The presets (`sim.costmodel.engine.PRESETS`) whose engine plans one step ahead, each with where it was read.
PLANS_AHEAD: dict[str, str] = {
    # vLLM V1 with async scheduling (on by default since vllm-project/vllm#27614, shipped on by v0.14.0; the
    # `vllm-v1` preset's `async_scheduling`, sourced in sim.costmodel.engine.PRESETS): the
    # executor allows two batches in flight (vllm/v1/executor/uniproc_executor.py: `max_concurrent_batches = 2 if
    # async_scheduling else 1`), so the engine core steps with `EngineCore.step_with_batch_queue`
    # (vllm/v1/engine/core.py): it schedules and launches the next batch and returns without blocking while the
    # queue is not full, then waits on the oldest batch's output; requests received meanwhile reach the scheduler
    # on the busy loop's next turn, after step N+1 was scheduled (vllm-project/vllm main, read 2026-12).
    "vllm-v1": "vllm/v1/engine/core.py EngineCore.step_with_batch_queue",
    # `Scheduler.event_loop_overlap` (python/sglang/srt/managers/scheduler.py): receive requests, schedule and
    # launch batch N+1 (queued behind batch N on the GPU), then process batch N's result.
    "sglang": "python/sglang/srt/managers/scheduler.py Scheduler.event_loop_overlap",
    # `PyExecutor._executor_loop_overlap` (tensorrt_llm/_torch/pyexecutor/py_executor.py, the default with the
    # overlap scheduler): fetch new requests, schedule and launch step i+1, then wait on step i's sampler event.
    "trtllm": "tensorrt_llm/_torch/pyexecutor/py_executor.py PyExecutor._executor_loop_overlap",
    # (`vllm-v0` plans each step after the last one's output is processed, in one process: no lag.)
}


class OverlapAdmission(BaseModel):
    """The field, its default taken from the preset that `kind` names (an explicit value wins)."""

    overlap_admission: bool = Field(
        default=False,
        description="a prompt arriving while a step runs is hidden from the next plan (scheduled one step ahead)",
    )

    @model_validator(mode="before")
    @classmethod
    def _plans_ahead(cls, data: Any) -> Any:
        if isinstance(data, dict) and "overlap_admission" not in data:
            kind = data.get("kind", "vllm-v1")
            on = kind in PLANS_AHEAD
            if on and kind == "vllm-v1":
                # vLLM V1 plans ahead only with async scheduling (`max_concurrent_batches = 2 if async_scheduling
                # else 1`, above): the lag follows the resolved `async_scheduling` (set, or the preset's)
                from sim.costmodel.engine import PRESETS  # (lazy: the engine module imports this one)

                on = bool(data.get("async_scheduling", PRESETS["vllm-v1"].get("async_scheduling", False)))
            return {**data, "overlap_admission": on}
        return data


__all__ = ["PLANS_AHEAD", "OverlapAdmission"]
