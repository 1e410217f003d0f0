"""KV room of a silicon row's scenario (benchmarks/coverage.py): the KV share each engine gives by default. How
many instances a row has is `coverage.instances`, from deployment facts only."""

from __future__ import annotations

from hwprofiles.specs import GPUSpec, ModelSpec
from sim.costmodel.layout import Layout
from sim.costmodel.quant import Quantization


def memory_fraction(
    backend: str, model: ModelSpec, gpu: GPUSpec, quant: dict[str, str], pools: list[dict], free: float = 0.9
) -> float:
    """servesim's `gpu_memory_utilization` (a share of the whole GPU) matching each engine's default: vLLM
    0.9 of the GPU; TRT-LLM and SGLang give the KV cache ~0.9 of what the weights leave free, or `free` of it
    where a TensorRT-LLM recipe sets `kv_cache_config.free_gpu_memory_fraction` (coverage_recipes_trt)."""
    if backend == "vllm":
        return 0.9
    q = Quantization(**quant)
    w = max(Layout(**{k: v for k, v in p.items() if k != "instances"}).weight_bytes_per_gpu(model, q) for p in pools)
    return min(0.97, max(free, (w + free * (gpu.memory_bytes - w)) / gpu.memory_bytes))
