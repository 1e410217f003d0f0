"""Iteration cost models: how long one batch (prefill chunks + decodes) takes on one instance.

Every kind answers three questions: `iteration()` for any batch, `decode_run()` for k consecutive
decode-only steps at once (the fast-forward path; vectorised), and `breakdown()` by operator for
`servesim estimate`. Decode-only steps always go through `decode_run` so stepping one iteration at a
time and fast-forwarding give bit-identical times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hwprofiles.specs import GPUSpec, ModelSpec
from sim.registry import Registry

Chunks = Sequence[tuple[int, int]]  # (new tokens q, cached tokens c) per prefill chunk


class CostModel(Protocol):
    def iteration(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> float:
        """Seconds for one iteration: prefill chunks plus `n_decode` decodes over `decode_ctx` KV tokens."""
        ...

    def decode_run(self, n: int, ctx_sums: np.ndarray) -> np.ndarray:
        """Seconds of each of len(ctx_sums) decode-only steps of `n` sequences (ctx_sums[s] = Σ context)."""
        ...

    def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        """Seconds by operator for one iteration (sums to `iteration()` up to rounding)."""
        ...


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinearCostConfig(_Strict):
    """Analytic cost: base + per prefill token + per decoding sequence (queueing checks)."""

    kind: Literal["linear"] = "linear"
    base_s: float = Field(default=0.0, ge=0)
    per_prefill_token_s: float = Field(default=0.0, ge=0)
    per_decode_seq_s: float = Field(default=0.0, ge=0)


class RooflineCostConfig(_Strict):
    """Per-operator roofline from GPU and model specs: max(FLOPs / achieved peak, bytes / achieved BW)."""

    kind: Literal["roofline"] = "roofline"
    compute_efficiency: float = Field(default=0.7, gt=0, le=1, description="achieved fraction of peak FLOP/s")
    memory_efficiency: float = Field(
        default=0.8, gt=0, le=1, description="achieved fraction of HBM bandwidth"
    )
    link_efficiency: float = Field(default=0.8, gt=0, le=1, description="achieved fraction of link bandwidth")
    iteration_overhead_s: float = Field(default=0.002, ge=0, description="CPU scheduling, sampling, launch")
    layer_overhead_s: float = Field(default=0.0, ge=0, description="fixed cost per layer per iteration")
    allreduce_latency_s: float = Field(default=1e-5, ge=0, description="fixed latency of one all-reduce")


COST_MODELS: Registry[CostModel] = Registry("cost model")


class LinearCost:
    """`base + a·prefill_tokens + b·decoding_sequences`; exact service times for theory checks."""

    def __init__(self, cfg: LinearCostConfig) -> None:
        self.base, self.per_tok, self.per_seq = cfg.base_s, cfg.per_prefill_token_s, cfg.per_decode_seq_s

    def iteration(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> float:
        return self.base + self.per_tok * sum(q for q, _ in prefill) + self.per_seq * n_decode

    def decode_run(self, n: int, ctx_sums: np.ndarray) -> np.ndarray:
        return np.full(len(ctx_sums), self.base + self.per_seq * n)

    def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        return {
            "base": self.base,
            "prefill": self.per_tok * sum(q for q, _ in prefill),
            "decode": self.per_seq * n_decode,
        }


class RooflineCost:
    """Roofline per operator, summed over layers (see DESIGN.md "Cost model").

    Linear layers are GEMMs with M = tokens in the batch and (K, N) from the model sharded by `tp`;
    attention prefill is q new tokens over c cached + q new (causal), decode attention reads every
    context token's K and V once; two ring all-reduces per layer when tp > 1; LM head over the
    sequences that produce a token; a fixed per-iteration and per-layer overhead.
    """

    def __init__(self, cfg: RooflineCostConfig, model: ModelSpec, gpu: GPUSpec, tp: int = 1) -> None:
        self.cfg, self.model, self.gpu, self.tp = cfg, model, gpu, tp
        self.flops = gpu.bf16_flops * cfg.compute_efficiency
        self.bw = gpu.mem_bw * cfg.memory_efficiency
        self.link = gpu.intra_node_bw * cfg.link_efficiency
        m, a = model, float(model.dtype_bytes)
        self.a = a
        self.L = m.num_layers
        self.h = m.hidden_size
        self.hq = max(1, m.num_heads // tp) * m.head_dim  # query width per GPU
        self.hkv = max(1, m.num_kv_heads // tp) * m.head_dim  # KV width per GPU
        self.inter = m.intermediate_size / tp
        self.up_out = (2 if m.gated_mlp else 1) * self.inter
        self.vocab = m.vocab_size / tp
        # decode attention per layer per context token: 4·hq FLOPs (QK and SV), K+V bytes
        self._attn_tok = max(4.0 * self.hq / self.flops, 2.0 * self.hkv * a / self.bw)
        self._attn_coef = self.L * self._attn_tok
        self._dense_cache: dict[int, dict[str, float]] = {}

    # -- operators -----------------------------------------------------------------------------------
    def _gemm(self, m: float, k: float, n: float, weight_copies: float = 1.0) -> float:
        flops = 2.0 * m * k * n
        byts = (k * n * weight_copies + m * k + m * n) * self.a
        return max(flops / self.flops, byts / self.bw)

    def _mem(self, byts: float) -> float:
        return byts / self.bw

    def _dense(self, m: int) -> dict[str, float]:
        """Per-iteration seconds of token-count-dependent operators (all layers) for M = m tokens."""
        got = self._dense_cache.get(m)
        if got is not None:
            return got
        mod, L, h, a = self.model, self.L, self.h, self.a
        ops: dict[str, float] = {}
        ops["qkv_proj"] = L * self._gemm(m, h, self.hq + 2 * self.hkv)
        ops["o_proj"] = L * self._gemm(m, self.hq, h)
        if mod.num_experts > 1:
            routed = m * mod.experts_per_token
            active = min(mod.num_experts, routed)
            ops["mlp_up"] = L * self._gemm(routed, h, self.up_out, active)
            ops["mlp_down"] = L * self._gemm(routed, self.inter, h, active)
            act_tokens = routed
        else:
            ops["mlp_up"] = L * self._gemm(m, h, self.up_out)
            ops["mlp_down"] = L * self._gemm(m, self.inter, h)
            act_tokens = m
        act = (3 if mod.gated_mlp else 2) * act_tokens * self.inter * a
        ops["elementwise"] = L * self._mem(
            2 * 2 * m * h * a + 2 * 3 * m * h * a + act + 2 * m * (self.hq + self.hkv) * a
        )
        if self.tp > 1:
            msg = m * h * a
            one = self.cfg.allreduce_latency_s + 2.0 * (self.tp - 1) / self.tp * msg / self.link
            ops["allreduce"] = 2 * L * one
        else:
            ops["allreduce"] = 0.0
        ops["overhead"] = self.cfg.iteration_overhead_s + L * self.cfg.layer_overhead_s
        if len(self._dense_cache) < 65536:
            self._dense_cache[m] = ops
        return ops

    def _lm_head(self, seqs: int) -> float:
        return self._gemm(seqs, self.h, self.vocab) if seqs else 0.0

    def _prefill_attn(self, q: int, c: int) -> float:
        flops = 4.0 * self.hq * q * (c + 0.5 * q)  # causal: new tokens see the cache and half of themselves
        byts = ((c + q) * 2 * self.hkv + 2 * q * self.hq) * self.a
        return self.L * max(flops / self.flops, byts / self.bw)

    # -- public ----------------------------------------------------------------------------------------
    def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        tokens = sum(q for q, _ in prefill) + n_decode
        ops = dict(self._dense(tokens))
        ops["attn_prefill"] = sum(self._prefill_attn(q, c) for q, c in prefill)
        ops["attn_decode"] = self._attn_coef * decode_ctx
        ops["lm_head"] = self._lm_head(len(prefill) + n_decode)
        return ops

    def iteration(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> float:
        return sum(self.breakdown(prefill, n_decode, decode_ctx).values())

    def decode_run(self, n: int, ctx_sums: np.ndarray) -> np.ndarray:
        base = sum(self._dense(n).values()) + self._lm_head(n)
        return base + self._attn_coef * np.asarray(ctx_sums, dtype=np.float64)


@COST_MODELS.register("linear", LinearCostConfig)
def _linear(cfg: LinearCostConfig, **_: object) -> CostModel:
    """base + per prefill token + per decoding sequence (analytic checks)"""
    return LinearCost(cfg)


@COST_MODELS.register("roofline", RooflineCostConfig)
def _roofline(
    cfg: RooflineCostConfig, *, model: ModelSpec, gpu: GPUSpec, tp: int = 1, **_: object
) -> CostModel:
    """per-operator roofline from GPU and model specs"""
    return RooflineCost(cfg, model, gpu, tp)
