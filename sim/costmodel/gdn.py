"""The memory-bound kernels of a Gated DeltaNet (linear-attention) layer besides its projections and the recurrent
update: split from `sim.costmodel.structured` to keep that module within the layout limit."""

from __future__ import annotations

from collections.abc import Callable

from hwprofiles.specs import ModelSpec


def gdn_kernels(mod: ModelSpec, tp: int, m: int, kern: Callable[[float, str], float]) -> float:
    """One Gated DeltaNet layer's memory-bound kernels besides its projections and the recurrent update
    (`StructuredCost._lin_seq_s`): the causal depthwise conv over the new q / k / v (`causal_conv1d_update` at
    decode), the decay / beta gating (`fused_gdn_gating`) and the output's gated RMSNorm (`RMSNormGated`) - vLLM's
    and SGLang's Qwen3-Next / Qwen3.5 decode path (vllm/model_executor/models/qwen3_next.py, the fla kernels).
    Each is its own launch; `kern(elements, op)` prices it with the floor of the measured kernel of the same kind
    (a short elementwise pass: RoPE's; the gating: the activation's; the norm: RMSNorm's)."""
    conv = (2.0 * mod.linear_num_key_heads + mod.linear_num_value_heads) * mod.linear_head_dim / tp
    vd = mod.linear_num_value_heads * mod.linear_head_dim / tp
    gates = 2.0 * mod.linear_num_value_heads / tp  # a decay and a beta per value head
    return kern(2.0 * conv * m, "attn_rope") + kern(2.0 * gates * m, "mlp_act") + kern(3.0 * vd * m, "input_layernorm")
