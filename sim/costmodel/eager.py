"""Host time of an eager forward: the serving engine's Python-side work per layer that the GPU waits for.

Engines capture CUDA graphs for decode batches; an iteration that carries prompt tokens runs eagerly unless the
engine compiles it piecewise (vLLM V1 up to its capture size). Then every layer's module calls, custom-op
dispatch and kernel launchers run in Python, and `ServingEngineConfig.eager_host_per_layer_s` says how long per
layer (SGLang: 0.975 ms from a DeepSeek-V3 measurement, see the preset) and `eager_host_per_moe_layer_s` how long
more per MoE layer (vLLM V1, whose compiled forward runs ungraphed above its capture size: 1.50 ms from a
GLM-5.3-Flash measurement; dense layers unmeasured, see the preset). It is charged in series with the
kernels, once per iteration (attention-DP ranks run their forwards side by side, each capturing graphs at its own
batch: `busiest_rank`), and in place of the
engine's `launch_per_layer_s` term: an eager-minus-graph measurement already contains the launches.

A speculative verifier's chunks (`sim.core.speculative.VerifyChunk`) are no prompt: SGLang captures its
target-verify forward in the decode CUDA graphs (`CudaGraphRunner`: `capture_forward_mode =
ForwardMode.TARGET_VERIFY`, `num_tokens_per_bs = speculative_num_draft_tokens`, batch sizes up to
`cuda_graph_max_bs`; python/sglang/srt/model_executor/cuda_graph_runner.py), so a verify-only step is priced as
a graph-captured step of as many sequences as it verifies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.core.speculative import VerifyChunk
from sim.costmodel.base import Chunks
from sim.costmodel.engine import ServingEngineConfig

if TYPE_CHECKING:
    from sim.costmodel.models import RooflineCost


def prompt_tokens(prefill: Chunks) -> int:
    """The prompt tokens among an iteration's chunks (a verifier's chunks are not prompt)."""
    return sum(ch[0] for ch in prefill if not isinstance(ch, VerifyChunk))


def eager_host_s(
    engine: ServingEngineConfig | None, layers: int, prompt: int, tokens: int, seqs: int, moe_layers: int = 0
) -> float:
    """Seconds of eager host time of one iteration with `prompt` prompt tokens among `tokens` in all, over `seqs`
    sequences, of a model with `layers` decoder layers of which `moe_layers` are MoE; 0 for decode-only and
    verify-only iterations within the engine's captured batch sizes (their graphs are the engines' default) and
    for graph-captured prefill."""
    if engine is None or tokens == 0:
        return 0.0
    per_step = layers * engine.eager_host_per_layer_s + moe_layers * engine.eager_host_per_moe_layer_s
    if not per_step:
        return 0.0
    if engine.graph_captured(seqs, True) if prompt == 0 else engine.graph_captured(tokens, False):
        return 0.0
    return per_step


def busiest_rank(cost: RooflineCost, n: int) -> int:
    """The busiest attention-DP rank's share of an instance's n tokens (or sequences), spread evenly as the cost
    model spreads them (`StructuredCost._rank_tokens`): what decides whether a step replays a CUDA graph. Each DP
    rank captures and replays its own graphs at its own batch, the ranks padded to the largest of them (vLLM V1
    vllm/v1/worker/dp_utils.py `coordinate_batch_across_dp`: token counts all-reduced over the DP group, "Pad all
    DP ranks up to the maximum token count across ranks", cudagraph mode the minimum over ranks). SGLang:
    `prepare_mlp_sync_batch` (python/sglang/srt/managers/scheduler.py) gathers every DP rank's batch and takes
    `can_cuda_graph = min(...)` over the ranks, each rank replaying at its own (padded) batch. TensorRT-LLM:
    tensorrt_llm/_torch/pyexecutor/cuda_graph_runner.py `maybe_get_cuda_graph` all-gathers each attention-DP
    rank's `[can_run_cuda_graph, batch_size]` over the TP group and replays only when every rank is
    generation-only, at the ranks' own batch sizes."""
    ranks = getattr(cost, "dp", 1)
    return n if ranks <= 1 else -(-n // ranks)


def moe_layers(cost: RooflineCost) -> int:
    """The MoE layers of the cost model's model (0 for a dense one): what `eager_host_per_moe_layer_s` is charged on."""
    return cost.model.num_moe_layers


def engine_terms(cost: RooflineCost, prefill: Chunks, n_decode: int, kernels: float) -> tuple[float, float, float]:
    """(engine CPU time, launch-bound excess, eager host time) of an iteration with prefill chunks whose kernels
    take `kernels` seconds: a verify-only step as a graph-captured one of its sequences; where the eager host time
    is charged the launch term is not (it holds the launches)."""
    prompt = prompt_tokens(prefill)
    tokens, seqs = sum(q for q, _ in prefill) + n_decode, len(prefill) + n_decode
    if prompt or n_decode:
        cpu, launch = cost._engine_s(tokens, seqs, False, kernels)
    else:
        cpu, launch = cost._engine_s(seqs, seqs, True, kernels)
    # graph capture is per DP rank (`busiest_rank`); prompt tokens only decide whether the step is a prompt step
    eager = eager_host_s(cost.engine, cost.L, prompt, busiest_rank(cost, tokens), busiest_rank(cost, seqs),
                         moe_layers(cost))  # fmt: skip
    return cpu, (0.0 if eager else launch), eager


def charge(cost: RooflineCost, ops: dict[str, float], prefill: Chunks, n_decode: int) -> None:
    """Add the serving-engine terms to a prefill-carrying iteration's breakdown, last and in this order."""
    ops["engine_cpu"], ops["launch"], ops["eager_host"] = engine_terms(
        cost, prefill, n_decode, sum(ops.values()) - ops["overhead"]
    )
