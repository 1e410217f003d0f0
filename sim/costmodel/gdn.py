"""The memory-bound kernels of a Gated DeltaNet (linear-attention) layer besides its projections and the recurrent
update: split from `sim.costmodel.structured` to keep that module within the layout limit."""

from __future__ import annotations

from collections.abc import Callable

from hwprofiles.specs import ModelSpec

# FLA's chunked Gated DeltaNet prefill (`chunk_gated_delta_rule_fwd`, fla/ops/gated_delta_rule/chunk.py, as vendored
# by vLLM and SGLang for Qwen3-Next / Qwen3.5) splits a prompt into chunks of 64 tokens (`chunk_local_cumsum(g,
# chunk_size=64)`, BT = 64).
GDN_CHUNK = 64


def chunk_flops_per_token(d: int, chunk: int = GDN_CHUNK) -> float:
    """FLOPs per token per value head of the chunked delta rule with key and value width d, chunk C, counting
    the kernels' full C x C tiles: inside a chunk the WY form builds A = beta K K^T (`chunk_scaled_dot_kkt_fwd`,
    2 C d per token), inverts its triangle (`solve_tril`, 2 C^2 / 3), forms w = A K and u = A V
    (`recompute_w_u_fwd`, 4 C d); across chunks the state S (d x d) gives v_new = u - w S and S += K^T v_new
    (`chunk_gated_delta_rule_fwd_h`, 4 d^2); the output o = Q S + (Q K^T masked) v_new (`chunk_fwd_o`, 2 d^2 + 4 C d).
    In all 6 d^2 + 10 C d + 2 C^2 / 3: 183k at d = 128, 2.8x the recurrent form's 4 d^2."""
    return 6.0 * d * d + 10.0 * chunk * d + 2.0 * chunk * chunk / 3.0


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
