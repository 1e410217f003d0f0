"""KV room of a silicon row's scenario (benchmarks/coverage.py): the KV share each engine gives by default, and
whether one instance holds its whole closed loop at once."""

from __future__ import annotations

from typing import Any

import pandas as pd
from coverage_layout import concurrency

from hwprofiles.specs import GPUSpec, ModelSpec
from sim.config.scenario import load_scenario
from sim.costmodel.layout import Layout
from sim.costmodel.quant import Quantization


def memory_fraction(backend: str, model: ModelSpec, gpu: GPUSpec, quant: dict[str, str], pools: list[dict]) -> float:
    """servesim's `gpu_memory_utilization` (a share of the whole GPU) matching each engine's default: vLLM
    0.9 of the GPU; TRT-LLM and SGLang give the KV cache ~0.9 of what the weights leave free."""
    if backend == "vllm":
        return 0.9
    q = Quantization(**quant)
    w = max(Layout(**{k: v for k, v in p.items() if k != "instances"}).weight_bytes_per_gpu(model, q) for p in pools)
    return min(0.97, max(0.9, (w + 0.9 * (gpu.memory_bytes - w)) / gpu.memory_bytes))


def holds_loop(row: pd.Series, sc: dict[str, Any], memory: float) -> bool:
    """Whether one instance of the row's agg scenario `sc` (KV share `memory`) holds the KV of its whole closed loop
    at once: clients x (isl + osl) tokens within the instance's KV capacity. A row listing k x batch_size clients
    whose one instance cannot (nvidia/Qwen3-32B-NVFP4 tp 2, 416-448 clients of 15.5k tokens: 0.37-0.38 of the room)
    ran k replicas, since one instance would have queued its clients for KV; it is read so with `replicas` off too
    (COVERAGE.md, "How a row becomes a scenario")."""
    from sim.cluster.pools import pool_specs  # (the cluster builder: imported on use, as validation_saturation does)

    cap = pool_specs(load_scenario({**sc, "kv_cache": {"gpu_memory_utilization": memory}}))[0].capacity.tokens
    return bool(cap >= concurrency(row) * (int(row["isl"]) + int(row["osl"])))
