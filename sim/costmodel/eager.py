"""Host time of an eager forward: the serving engine's Python-side work per layer that the GPU waits for.

Engines capture CUDA graphs for decode batches; an iteration that carries prompt tokens runs eagerly unless the
engine compiles it piecewise (vLLM V1 up to its capture size). Then every layer's module calls, custom-op
dispatch and kernel launchers run in Python, and `ServingEngineConfig.eager_host_per_layer_s` says how long per
layer (SGLang: 0.975 ms from a DeepSeek-V3 measurement, see the preset). It is charged in series with the
kernels, once per iteration (attention-DP ranks run their forwards side by side).
"""

from __future__ import annotations

from sim.costmodel.engine import ServingEngineConfig


def eager_host_s(engine: ServingEngineConfig | None, layers: int, prompt_tokens: int, tokens: int) -> float:
    """Seconds of eager host time of one iteration with `prompt_tokens` prompt tokens among `tokens` in all; 0 for
    decode-only iterations (their graphs are the engines' default) and for graph-captured ones."""
    if engine is None or prompt_tokens == 0 or not engine.eager_host_per_layer_s:
        return 0.0
    if engine.graph_captured(tokens, False):
        return 0.0
    return layers * engine.eager_host_per_layer_s
