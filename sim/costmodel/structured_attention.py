"""Attention pricing of `StructuredCost` (sim.costmodel.structured): MLA (absorbed decode form, latent
decompression for prefill), local-window / sparse-top-k / linear (Gated DeltaNet) layers, FP8 FMHA, and the
busiest attention-DP rank. A base class so the structured roofline's GEMM / MoE side and its attention side each
stay small enough to read (and within tests/test_layout.py's limit); `StructuredCost` sets the attributes
declared below before `_setup_attention` runs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.core.speculative import VerifyChunk
from sim.costmodel.models import Chunks, RooflineCost

# GPUs whose serving engines ship FP8 attention kernels (Hopper: FlashAttention 3, FlashInfer, TRT-LLM FMHA;
# data-centre Blackwell sm100/sm103: TRT-LLM and FlashInfer FP8 FMHA)
FP8_ATTENTION_GPUS = frozenset({"h100-sxm", "h200", "b200", "b300", "gb200", "gb300"})


# The longest query chunk an MLA layer runs in the absorbed (decode) form, without speculative decoding: vLLM's
# MLA backends send query lengths <= `reorder_batch_threshold` to the decode kernels, 1 by default and
# 1 + num_speculative_tokens when the backend verifies speculation as decodes (vllm/v1/attention/backends/mla/
# common.py, `MLACommonMetadataBuilder`); every longer chunk - chunked-prefill tails, prefix-cache hits over a
# long cached context - runs the prefill path (latent decompression + FlashAttention), whatever either costs.
# The scenario sets the threshold from `speculative.num_tokens` (`decode_query`, sim.cluster.pools). No engine
# servesim models picks the form by cost, so there is no min() of the two.
DECODE_QUERY = 1


class StructuredAttention(RooflineCost):
    """Attention terms of the structured roofline; the GEMMs and the rest of the step are `StructuredCost`'s."""

    # set by `StructuredCost.__init__` (per-GPU heads, KV / activation bytes per element, attention-DP ranks,
    # the stage's layers of each kind, the FP8-FMHA peak ratio, the absorbed-form threshold) and its GEMM pricing
    heads: int
    kva: float
    aa: float
    dp: int
    n_full: float
    n_local: float
    n_lin: float
    fmha_scale: float
    decode_query: int
    gemm: Callable[..., float]

    # -- attention coefficients -----------------------------------------------------------------------
    def _setup_attention(self) -> None:
        """Seconds per context token per layer of decode attention, for full and local layers."""
        m, hd = self.model, self.heads
        if m.is_mla:
            lat = float(m.kv_lora_rank or 0)
            flops = 2.0 * hd * (lat + m.qk_rope_head_dim) + 2.0 * hd * lat  # scores over latent+rope, values
            self._kv_elems = lat + m.qk_rope_head_dim
        else:
            flops = 4.0 * self.hq
            self._kv_elems = float(m.kv_elems_per_token_layer(self.tp))
        byts = self._kv_elems * self.kva
        self._tok_s = max(flops / self.attn_flops, byts / self.attn_bw)
        self._key_flops, self._key_bytes = flops, byts  # per query-key pair / per key read (`_absorbed`)
        # linear (G) layers: read + write the fp32 recurrent state of each sequence once per step
        self._lin_seq_s = 2.0 * m.state_bytes_per_sequence(self.tp) / max(1, m.layer_count("G")) / self.attn_bw
        self._capped = m.attention_topk is not None or self.n_local > 0

    # -- attention -------------------------------------------------------------------------------------
    def _fmha(self, q: int, c: int, cap: float | None, width: float, byts: float) -> float:
        """One layer's prefill attention kernel: q new tokens after c cached ones (each query sees at most
        `cap` keys when the layer is windowed), query-key width `width` per GPU (4·width FLOPs per query-key
        pair, QK and PV). With efficiency curves: the measured FlashAttention efficiency (sim.costmodel.attention,
        fitted on A100 kernel timings, on this GPU's peak), which counts every new token against every key it
        may see, causal half included, as the kernel timings show — what RooflineCost uses; else the
        spec-sheet roofline over the causal half. Both at the FP8 peak when the KV cache is FP8."""
        if self.attn_eff is not None and self._attn_grids.get("prefill") is None:
            keys = float(c + q) if cap is None else min(float(c + q), float(cap))
            # prefill_s counts q x (c + q) pairs: pass the keys a query sees as c + q
            peak = self.attn_peak_flops * self.fmha_scale
            return max(self.attn_eff.prefill_s(q, keys - q, width, peak), byts / self.attn_peak_bw)
        seen = c + 0.5 * q if cap is None else min(c + 0.5 * q, float(cap))
        return max(4.0 * width * q * seen / (self.attn_flops * self.fmha_scale), byts / self.attn_bw)

    def _prefill_one(self, q: int, c: int) -> float:
        """One sequence's prefill attention over all layers of the stage."""
        mod, hd = self.model, self.heads
        t = 0.0
        for layers, cap in ((self.n_full, mod.attention_topk), (self.n_local, mod.sliding_window)):
            if not layers:
                continue
            if mod.is_mla and q <= self.decode_query:  # a chunk the engine runs as a decode (`DECODE_QUERY`)
                t += layers * self._absorbed(q, c, cap)
            elif mod.is_mla:  # decompress the latent of cached + new tokens, then MHA at qk / v widths
                lat = float(mod.kv_lora_rank or 0)
                up = self.gemm("kv_b", c + q, lat, hd * (mod.head_dim - mod.qk_rope_head_dim + mod.value_dim))
                byts = (c + q) * (lat + mod.qk_rope_head_dim) * self.kva + 2 * q * hd * mod.head_dim * self.aa
                t += layers * (up + self._fmha(q, c, cap, hd * (mod.head_dim + mod.value_dim) / 2.0, byts))
            else:
                kv_tokens = c + q if cap is None else min(c + q, float(cap) + q)
                byts = kv_tokens * mod.kv_elems_per_token_layer(self.tp) * self.kva + 2 * q * self.hq * self.aa
                t += layers * self._fmha(q, c, cap, float(self.hq), byts)
        if self.n_lin:  # chunked delta rule: ~4 d_k d_v FLOPs per token per value head
            d = mod.linear_head_dim
            flops = 4.0 * q * (mod.linear_num_value_heads / self.tp) * d * d
            t += self.n_lin * (flops / self.attn_flops + self._lin_seq_s)
        return t

    def _absorbed(self, q: int, c: int, cap: float | None) -> float:
        """One MLA layer's attention for q new tokens over c cached ones in the absorbed form the decode step
        uses (queries against the compressed latent, read once per chunk): what engines run for short query
        chunks - speculative verification (vLLM's MLA backends treat query lengths up to 1 + num_speculative_tokens
        as decodes, `reorder_batch_threshold`; SGLang runs target-verify batches in the MLA form; TensorRT-LLM's
        generation kernel takes 1 + MTP tokens per sequence). Only chunks of at most `decode_query` tokens take this
        form (`DECODE_QUERY`); at q = 1 it is a decode step's attention (`_tok_s`) over the cache and the new token."""
        seen = c + 0.5 * q if cap is None else min(c + 0.5 * q, float(cap))
        keys = c + q if cap is None else min(float(c + q), q * float(cap))
        return max(q * seen * self._key_flops / self.attn_flops, keys * self._key_bytes / self.attn_bw)

    def _prefill_attn(self, q: int, c: int) -> float:
        return self._prefill_one(q, c)

    def _generation_kernel(self, prefill: Chunks) -> bool:
        """Whether the step's chunks include a speculative verifier's that attend in the absorbed form."""
        return self.model.is_mla and any(isinstance(ch, VerifyChunk) and ch[0] <= self.decode_query for ch in prefill)

    @property
    def provenance(self) -> dict[str, str]:
        out = dict(super().provenance)
        if self.attn_eff is not None and self._attn_grids.get("prefill") is None:
            out["attention"] = "transferred (measured A100 FlashAttention efficiency, scaled by peaks)"
        return out

    def _prefill_ranks(self, prefill: Chunks) -> float:
        """Busiest rank's prefill attention: chunks placed largest-first on the least-loaded rank."""
        costs = sorted((self._prefill_one(q, c) for q, c in prefill), reverse=True)
        if self.dp == 1:
            return sum(costs)
        loads = [0.0] * self.dp
        for x in costs:
            i = loads.index(min(loads))
            loads[i] += x
        return max(loads)

    def _decode_attn(self, n: int, ctx: np.ndarray) -> np.ndarray:
        """Busiest rank's decode attention, elementwise in the instance's context sums."""
        if n == 0:
            return np.zeros_like(ctx)
        if not (self._capped or self.n_lin):
            return self._coef(n) * ctx
        nr = -(-n // self.dp)
        ctx_r = ctx * (nr / n)
        mod = self.model
        t = np.zeros_like(ctx_r)
        for layers, cap in ((self.n_full, mod.attention_topk), (self.n_local, mod.sliding_window)):
            if layers:
                seen = ctx_r if cap is None else nr * np.minimum(ctx_r / nr, float(cap))
                t = t + layers * self._tok_s * seen
        if self.n_lin:
            t = t + self.n_lin * nr * self._lin_seq_s
        return t

    def _coef(self, n: int) -> float:
        """Seconds per unit of the instance's context sum (full layers; the busiest rank's share)."""
        return self.n_full * self._tok_s * ((-(-n // self.dp)) / n) if n else 0.0
