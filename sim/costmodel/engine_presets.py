"""The serving-engine presets (`serving_engine.kind`): each engine's terms that differ from vLLM V1's defaults.

Split from `sim.costmodel.engine` (which re-exports `PRESETS` and registers each kind) so that the sourced
per-engine values grow here without pushing the config class past the layout limit. Plain data: no imports
from the engine module, so either side can be read alone."""

from __future__ import annotations

from typing import Any

# Presets: only what differs from the vLLM V1 defaults (`ServingEngineConfig`), each with its source.
PRESETS: dict[str, dict[str, Any]] = {
    "vllm-v1": {
        # Async scheduling is on by default: vllm-project/vllm#27614 (plan #27679; vllm-gaudi#768: "default usage in
        # #27614"; first release not confirmed; v0.14.0 ships it on, #31998 adds spec decoding: djl#3833 quoting the
        # notes): the scheduler runs one step ahead of the GPU (#19970: "minimize scheduler overhead by overlapping
        # scheduling with model execution"). A vLLM 0.28 run records `scheduler_config.async_scheduling: true` unasked
        # (LLMServingSim bench/examples/RTXPRO6000/Qwen3-32B/vllm/meta.json). Older V1 releases: set it false.
        "async_scheduling": True,
        # Above the capture size (`cuda_graph_max_batch`; vLLM's `max_cudagraph_capture_size`) a step runs the
        # torch.compile'd pieces without CUDA graphs. vllm-project/vllm issue #56975 (2026-09-16 comment, vLLM
        # 0.28.1rc1 nightly, GLM-5.3-Flash FP8 on 4x GB200, TP 4): steps of 1,024-4,096 tokens took a CUDA-event
        # span of 171.0 ms (p50, n = 1,039) ungraphed and 104.9 ms as PIECEWISE graphs with
        # `--max-cudagraph-capture-size 4096`, same server otherwise: (171.0 - 104.9) ms / 44 MoE layers (of 45)
        # = 1.50 ms per MoE layer that the GPU waits on the host, charged per MoE layer in series with the kernels.
        # Charged on MoE layers only: every measurement of it is on MoE models, and a dense model cannot pay it
        # (LLMServingSim's vLLM 0.19 Llama-3.1-8B runs on an RTX PRO 6000, default capture size 256, reach their
        # first token 36 ms after scheduling: at most ~0.3 ms per dense layer besides the kernels).
        # Caveats: (1) GLM-5.3-Flash is a hybrid, 34 KDA linear-attention + 11 sparse-MLA layers (vLLM support:
        # #53906); a KDA layer's Triton prefill path alone is ~15 kernels, so its host time per layer may exceed an
        # MLA or GQA model's. (2) The host is a Grace CPU (GB200); InferenceX's B300 nodes pay ~15 % of it
        # (COVERAGE.md). (3) Item 3 of the same comment softens the issue's "the eager path ... is host-paced for
        # small chunks"; its 16,384-token steps (host 332 ms, events 334 ms) are not separated into kernels and
        # host, so whether a long step still pays the 66 ms is not measured (series assumes it does; COVERAGE.md
        # "TTFT: host time of uncaptured steps", the rule tests). (4) One model, one release, one host.
        "eager_host_per_moe_layer_s": (171.0 - 104.9) / 44 * 1e-3,
    },
    "vllm-v0": {
        # V0's scheduler, sampler and detokeniser run in the same process between steps, not overlapped
        # (the motivation of V1, vLLM blog Jan 2025): ~1-2 ms per step at moderate batch.
        "scheduler_s": 1.5e-3,
        "sample_per_seq_s": 2e-5,
        # V0 captured decode batches 1, 2, 4, 8, ..., 256 (`_BATCH_SIZES_TO_CAPTURE`, vllm/worker/model_runner.py);
        # prefill and mixed batches ran eagerly.
        "cuda_graph_max_batch": 256,
        "piecewise_graphs": False,
    },
    "sglang": {
        # SGLang overlaps CPU scheduling with the GPU ("zero-overhead batch scheduler", SGLang v0.4 blog, Dec 2024).
        "scheduler_s": 1e-4,
        # `--cuda-graph-max-bs`: decode-only graphs; the default is chosen from GPU memory and TP (about 160-256
        # on 80 GB-class GPUs; approximate, check your server's log).
        "cuda_graph_max_batch": 160,
        "piecewise_graphs": False,
        # DeepSeek-V3 (61 layers) in SGLang, one new token: an eager extend forward took 82.6 ms, the same step in a
        # CUDA graph 23.1 ms (sgl-project/sglang PR #12160, "forward cost" log lines, 2025-10): (82.6 - 23.1) / 61
        # = 0.975 ms of host time per layer that a graph removes. SGLang captures prefill only in piecewise CUDA
        # graphs: opt-in (`--enable-piecewise-cuda-graph`) through 2025 (releases <= 0.5.6), then on by default
        # (PR #16331, merged 2026-01-03; `--disable-piecewise-cuda-graph` to opt out). ServerArgs
        # `_handle_piecewise_cuda_graph` turns it off with attention DP, pp > 1, PD disaggregation, an MoE
        # all-to-all backend, LoRA, multimodal models, listed architectures (DeepseekV32, Qwen3Next, GlmMoeDsa, ...)
        # and, until PR #22128 (2026-04-17), speculative decoding; it captures prompt batches up to
        # `piecewise_cuda_graph_max_tokens`: `chunked_prefill_size`, or 2048 with an MLA backend (PR #15927).
        # Which applied to a given run cannot be decided from what servesim knows (no release, and the launch
        # flags are not recorded): this preset assumes eager prefill, right for releases <= 0.5.6 and the
        # disabled layouts and models, and too slow by layers x 0.975 ms where a 2026 release graphed the step.
        # For such a run set `eager_host_per_layer_s: 0` (servesim has one capture size for decode and piecewise
        # graphs, so `piecewise_graphs: true` would cap prompt graphs at `cuda_graph_max_batch` tokens).
        "eager_host_per_layer_s": 9.75e-4,
        # PD disaggregation streams from the decode server as it admits the request (see `disagg_first_token`)
        "disagg_first_token": "decode_admission",
        "admission_reserve": "sglang_new_token_ratio",  # PrefillAdder's reservation (see the field)
        # per-rank prompt chunks under DP attention (`chunked_prefill_size // dp_size`, policies/dp_chunks.py)
        "attention_dp_rank_chunks": True,
    },
    "trtllm": {
        # TensorRT-LLM's C++ executor with in-flight batching and an overlap scheduler; CUDA graphs for decode
        # up to `cuda_graph_config.max_batch_size`, default 128 (TensorRT-LLM LLM API `CudaGraphConfig`).
        "scheduler_s": 1e-4,
        "cuda_graph_max_batch": 128,
        "piecewise_graphs": False,
        "sample_per_seq_s": 2e-6,
        # The PyTorch flow runs the context phase as eager PyTorch modules with custom ops (CUDA graphs cover
        # generation-only batches). No TensorRT-LLM measurement of that host time was found, and SGLang's (above)
        # is no source for another engine's host code: 0 (the field's default, not charged) until one is measured;
        # set `eager_host_per_layer_s` to charge it.
        # the generation worker returns the first token (see `disagg_first_token`)
        "disagg_first_token": "decode",
        # NVLinkOneSided all-to-all, TensorRT-LLM's default inside one NVLink domain (tech blog 18, @22de8b34d);
        # beyond the domain `MoeComm` prices DeepEP's low-latency kernels over the NIC (`alltoall.deepep_ll_s`)
        "moe_all2all": "one_sided",
        "admission_reserve": "guaranteed_no_evict",  # the default capacity_scheduler_policy (see the field)
    },
}

# One line per preset for `servesim list engines` (the registry factories' docstrings).
DESCRIPTIONS: dict[str, str] = {
    "vllm-v1": "vLLM V1 (default): async scheduling, piecewise CUDA graphs to 512, custom all-reduce",
    "vllm-v0": "vLLM V0 engine: serial scheduling/sampling, decode CUDA graphs up to 256",
    "sglang": "SGLang: overlap scheduler, decode CUDA graphs (cuda_graph_max_bs), custom all-reduce",
    "trtllm": "TensorRT-LLM (PyTorch backend): overlap scheduler, decode CUDA graphs up to 128",
}
