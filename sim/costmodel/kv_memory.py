"""KV-cache memory the way vLLM sizes it, instead of a fixed reserve.

vLLM V1 (vllm/v1/worker/gpu_worker.py `determine_available_memory`, with vllm/utils `memory_profiling`)
runs one dummy forward pass of `max_num_batched_tokens` tokens (and a dummy sampler pass over
`max_num_seqs` sequences), records the allocator's peak, and gives the KV cache what is left of the
requested share of the GPU:

    kv = memory × gpu_memory_utilization − weights − peak activation − non-torch memory − CUDA-graph memory

Here, per GPU of a tensor-parallel group:

- weights: the model's bytes / tp (`ModelSpec.weight_bytes`);
- peak activation at M = max_num_batched_tokens tokens: the MLP's live tensors dominate — the residual and
  hidden state (2·h), the fused gate/up output (2·I/tp) and the activation output (I/tp), in the model
  dtype — plus the sampler's fp32 logits over `max_num_seqs` sequences and the full vocabulary, twice
  (logits and their softmax/sorting temporaries);
- CUDA graphs share one memory pool whose size is set by the largest captured batch: the activations of
  `cuda_graph_max_batch` tokens (0 without graphs);
- non-torch memory (NCCL buffers, cuBLAS workspaces; the CUDA context itself is outside the total vLLM
  sees): `non_torch_gb`, about half a gigabyte in vLLM's start-up logs ("non-torch memory" line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwprofiles.specs import GPUSpec, ModelSpec

LOGITS_COPIES = 2  # fp32 logits plus one temporary of the same size in the sampler
NON_TORCH_GB = 0.5


def activation_bytes(model: ModelSpec, tp: int, tokens: int) -> float:
    """Peak live activations of one forward pass over `tokens` tokens on one GPU (see the module docstring)."""
    mlp = 2 * model.hidden_size + (3 if model.gated_mlp else 2) * model.intermediate_size / tp
    return float(tokens) * mlp * model.dtype_bytes


@dataclass(frozen=True)
class KVBudget:
    """The terms of vLLM's KV-cache budget on one GPU, in bytes (`kv` is what is left)."""

    requested: float
    weights: float
    activation: float
    cuda_graphs: float
    non_torch: float

    @property
    def kv(self) -> float:
        return self.requested - self.weights - self.activation - self.cuda_graphs - self.non_torch

    @property
    def reserve(self) -> float:
        """Everything but weights and KV: what a fixed `reserve_gb` stood for."""
        return self.activation + self.cuda_graphs + self.non_torch


DEFAULT_RESERVE_GB = 2.0  # other schedulers, `kv_cache.reserve_gb` unset


def reserve_bytes(
    reserve_gb: float | None, model: ModelSpec, gpu: GPUSpec, tp: int, scheduler: Any, engine: Any, util: float
) -> float:
    """Per-GPU bytes besides weights and KV: `reserve_gb` when set; with the `vllm` scheduler vLLM's profiled
    activation + CUDA-graph pool + non-torch memory at its resolved batch sizes; else the 2 GB default."""
    if reserve_gb is not None:
        return reserve_gb * 1e9
    if getattr(scheduler, "kind", None) != "vllm":
        return DEFAULT_RESERVE_GB * 1e9
    seqs, tokens = scheduler.resolved(gpu)
    graphs = min(engine.cuda_graph_max_batch, 2 * seqs) if engine is not None else 0  # V1: min(2 x seqs, 512)
    return vllm_kv_budget(model, gpu, tp, util, tokens, seqs, graphs).reserve


def vllm_kv_budget(
    model: ModelSpec,
    gpu: GPUSpec,
    tp: int,
    gpu_memory_utilization: float,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    cuda_graph_max_batch: int,
    non_torch_gb: float = NON_TORCH_GB,
) -> KVBudget:
    """vLLM's KV budget per GPU for this model, GPU and engine settings."""
    logits = LOGITS_COPIES * max_num_seqs * model.vocab_size * 4.0
    return KVBudget(
        requested=gpu.memory_bytes * gpu_memory_utilization,
        weights=float(model.weight_bytes(tp)),
        activation=activation_bytes(model, tp, max_num_batched_tokens) + logits,
        cuda_graphs=activation_bytes(model, tp, cuda_graph_max_batch) if cuda_graph_max_batch else 0.0,
        non_torch=non_torch_gb * 1e9,
    )
