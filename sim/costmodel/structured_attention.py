"""Attention pricing of `StructuredCost` (sim.costmodel.structured): MLA (absorbed decode form, latent
decompression for prefill), local-window / sparse-top-k / linear (Gated DeltaNet) layers, FP8 FMHA, and the
busiest attention-DP rank. A base class so the structured roofline's GEMM / MoE side and its attention side each
stay small enough to read (and within tests/test_layout.py's limit); `StructuredCost` sets the attributes
declared below before `_setup_attention` runs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.core.speculative import VerifyChunk
from sim.costmodel.gdn import chunk_flops_per_token
from sim.costmodel.models import Chunks, RooflineCost
from sim.costmodel.quant import Quantization

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

# Sparse MLA (DSA) prompts past `attention_topk` keys run in the absorbed form: each query attends to its own top-k
# latents, so only the heads of one token can share a key tile and a GPU's heads fill the MMA's rows. FlashMLA's
# sparse prefill kernel takes heads in multiples of 64 on Hopper and 128 on Blackwell, and both SGLang and vLLM pad
# the query with zero heads up to that: SGLang `NativeSparseAttnBackend._forward_flashmla_sparse` (python/sglang/srt/
# layers/attention/nsa_backend.py @005e8bf: "FlashMLA sparse kernel requires num_heads to be a multiple of 64
# (Hopper) or 128 (Blackwell)"); vLLM `FlashMLASparseImpl._bf16_flash_mla_kernel` (vllm/v1/attention/backends/mla/
# flashmla_sparse.py: `prefill_padding` 128 on the sm100 family, else 64), which `_forward_bf16_kv` (BF16 cache) and
# the FP8 cache's separate prefill path (upconverted to BF16) both call. With an FP8 cache (`fp8_ds_mla`) and fewer
# than `MIN_HEADS_FOR_BF16_PREFILL` = 32 heads per rank vLLM runs prompts through the FP8 sparse decode kernel
# instead (`_forward_fp8_kv_mixed_batch`), which pads to 64 heads up to 64, else 128
# (`_compute_fp8_decode_padded_heads`), on either GPU family. (Older vLLM copies pad to 64 on every GPU; no silicon
# row runs DSA on vLLM.)
SPARSE_HEAD_TILE = {"h100-sxm": 64, "h200": 64, "b200": 128, "b300": 128, "gb200": 128, "gb300": 128}
PADS_SPARSE_HEADS = frozenset({"sglang", "vllm-v1"})
VLLM_MIN_HEADS_FOR_BF16_PREFILL = 32
# Prompts whose sequences stay within top-k keys: SGLang runs them as dense MHA on the decompressed latent
# (`set_nsa_prefill_impl`: `max_kv_len <= self.nsa_index_topk`) and only stores their index keys
# (`Indexer._forward_cuda_k_only`). TensorRT-LLM skips the indexer's MQA and top-k for them too
# (`DeepSeekSparseAttentionConfig.skip_indexer_for_short_seqs`, default True, tensorrt_llm/llmapi/llm_args.py) but
# keeps the sparse absorbed kernel (`MLA.forward_context_dsa`: `forward_absorption_context` on sm100+, else
# `forward_sparse_mla_kvcache_bf16`, tensorrt_llm/_torch/modules/attention.py); vLLM runs the indexer and the sparse
# kernel on every prompt (`FlashMLASparseImpl.forward_mqa`: "MQA 576/512 approach for both prefill and decode").
DENSE_WITHIN_TOPK = frozenset({"sglang"})
SKIPS_SHORT_INDEXER = frozenset({"sglang", "trtllm"})


def sparse_heads(kind: str, gpu: str, heads: int, fp8_kv: bool) -> int:
    """Heads per GPU the sparse MLA prompt kernel computes on, padding included (`SPARSE_HEAD_TILE` note)."""
    tile = SPARSE_HEAD_TILE.get(gpu, 1)
    if kind == "vllm-v1" and fp8_kv and heads < VLLM_MIN_HEADS_FOR_BF16_PREFILL and tile > 1:
        tile = 64 if heads <= 64 else 128  # the FP8 decode kernel's h_q: 64 or 128
    elif kind not in PADS_SPARSE_HEADS:
        tile = 1
    return -(-heads // tile) * tile


# Bytes per indexer key per query: the fp32 logit the scoring kernel writes (DeepGEMM `fp8_mqa_logits` /
# `fp8_paged_mqa_logits`, a [queries, keys] float32 matrix) and the top-k kernel reads back (`fast_topk_*`).
INDEXER_LOGIT_BYTES = 8.0
INDEXER_KEY_SCALE_BYTES = 4.0  # each FP8 index key carries an fp32 scale (SGLang `head_dim_with_sf = 132`)


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
    quant: Quantization
    _kind: str  # the serving engine's preset kind ("" without one), set by `_setup_indexer`

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
        self._setup_indexer()

    def _setup_indexer(self) -> None:
        """DSA's lightning indexer and sparse MLA. The indexer is replicated on every GPU of the attention group
        (SGLang `Indexer`: `wq_b`, `wk`, `weights_proj` are `ReplicatedLinear`, python/sglang/srt/layers/attention/
        nsa/nsa_indexer.py @005e8bf), scores in FP8 (DeepGEMM `fp8_mqa_logits`: 2 x index_n_heads x index_head_dim
        FLOPs per query-key pair) at the GPU's FP8 peak where it has one."""
        m, gpu = self.model, self.gpu
        fp8 = gpu.peak_flops("fp8")
        self._idx_flops = self.attn_flops * (fp8 / gpu.bf16_flops if fp8 else 1.0)
        self._idx_pair_flops = 2.0 * m.index_n_heads * m.index_head_dim
        # a decode token's scoring per cached key: its FLOPs, the FP8 key + scale read, the logit written and read
        key_bytes = m.index_head_dim + INDEXER_KEY_SCALE_BYTES + INDEXER_LOGIT_BYTES
        self._idx_key_s = (
            max(self._idx_pair_flops / self._idx_flops, key_bytes / self.attn_bw) if m.index_n_heads else 0.0
        )
        self._kind = self.engine.kind if self.engine is not None else ""
        self._sparse_heads = sparse_heads(self._kind, gpu.name, self.heads, self.quant.kv_cache == "fp8")

    # -- attention -------------------------------------------------------------------------------------
    def _fmha(self, q: int, c: int, cap: float | None, width: float, byts: float, scale: float | None = None) -> float:
        """One layer's prefill attention kernel: q new tokens after c cached ones (each query sees at most
        `cap` keys when the layer is windowed), query-key width `width` per GPU (4·width FLOPs per query-key
        pair, QK and PV). With efficiency curves: the measured FlashAttention efficiency (sim.costmodel.attention,
        fitted on A100 kernel timings, on this GPU's peak), which counts every new token against every key it
        may see, causal half included, as the kernel timings show — what RooflineCost uses; else the
        spec-sheet roofline over the causal half. Both at the FP8 peak when the KV cache is FP8 (`scale`: another
        ratio to the bf16 peak, 1 for kernels that compute in BF16 whatever the cache)."""
        scale = self.fmha_scale if scale is None else scale
        if self.attn_eff is not None and self._attn_grids.get("prefill") is None:
            keys = float(c + q) if cap is None else min(float(c + q), float(cap))
            # prefill_s counts q x (c + q) pairs: pass the keys a query sees as c + q
            peak = self.attn_peak_flops * scale
            return max(self.attn_eff.prefill_s(q, keys - q, width, peak), byts / self.attn_peak_bw)
        seen = c + 0.5 * q if cap is None else min(c + 0.5 * q, float(cap))
        return max(4.0 * width * q * seen / (self.attn_flops * scale), byts / self.attn_bw)

    def _prefill_one(self, q: int, c: int) -> float:
        """One sequence's prefill attention over all layers of the stage."""
        mod, hd = self.model, self.heads
        t = 0.0
        for layers, cap, full in ((self.n_full, mod.attention_topk, True), (self.n_local, mod.sliding_window, False)):
            if not layers:
                continue
            dsa = full and mod.is_mla and cap is not None  # DSA's top-k on the full layers, not a window
            if mod.is_mla and q <= self.decode_query:  # a chunk the engine runs as a decode (`DECODE_QUERY`)
                t += layers * (self._absorbed(q, c, cap) + (self._indexer(q, c) if dsa else 0.0))
            elif dsa and cap is not None and (c + q > cap or self._kind not in DENSE_WITHIN_TOPK):
                # the indexer, then sparse absorbed MLA: past top-k keys, or on every prompt where the engine has
                # no dense path (`DENSE_WITHIN_TOPK`); within top-k some engines skip the scoring
                short = c + q <= cap and self._kind in SKIPS_SHORT_INDEXER
                t += layers * (self._sparse_mla(q, c, cap) + (0.0 if short else self._indexer(q, c)))
            elif mod.is_mla:  # decompress the latent of cached + new tokens, then MHA at qk / v widths
                lat = float(mod.kv_lora_rank or 0)
                up = self.gemm(
                    "kv_b", c + q, lat, hd * (mod.head_dim - mod.qk_rope_head_dim + mod.value_dim), module="attention"
                )
                byts = (c + q) * (lat + mod.qk_rope_head_dim) * self.kva + 2 * q * hd * mod.head_dim * self.aa
                t += layers * (up + self._fmha(q, c, cap, hd * (mod.head_dim + mod.value_dim) / 2.0, byts))
            else:
                kv_tokens = c + q if cap is None else min(c + q, float(cap) + q)
                byts = kv_tokens * mod.kv_elems_per_token_layer(self.tp) * self.kva + 2 * q * self.hq * self.aa
                t += layers * self._fmha(q, c, cap, float(self.hq), byts)
        if self.n_lin:  # the chunked delta rule's FLOPs (`gdn.chunk_flops_per_token`) per value head
            flops = q * (mod.linear_num_value_heads / self.tp) * chunk_flops_per_token(mod.linear_head_dim)
            t += self.n_lin * (flops / self.attn_flops + self._lin_seq_s)
        return t

    def _sparse_mla(self, q: int, c: int, cap: float) -> float:
        """One DSA layer's attention for q new tokens after c cached ones, past top-k keys (and within them on
        engines without SGLang's dense path, `DENSE_WITHIN_TOPK`): absorbed MQA over each query's top-k latents
        (FlashMLA sparse / TRT-LLM sparse MLA, nsa_backend.py `forward_extend`): per pair
        2(lat + rope) FLOPs for the score and 2 lat for the value on every (padded, `SPARSE_HEAD_TILE`) head, in
        BF16 (FlashMLA dequantises an FP8 cache to BF16: `dequantize_k_cache_paged` before `flash_mla_sparse_fwd`)."""
        mod = self.model
        lat, rope = float(mod.kv_lora_rank or 0), float(mod.qk_rope_head_dim)
        width = self._sparse_heads * (2.0 * lat + rope) / 2.0  # 4 width per pair = 2 h (lat + rope) + 2 h lat
        byts = (c + q) * (lat + rope) * self.kva + q * self.heads * (2.0 * lat + rope) * self.aa
        return self._fmha(q, c, cap, width, byts, scale=1.0)

    def _indexer(self, q: int, c: int) -> float:
        """One layer's lightning-indexer scoring of q new tokens after c cached ones: every query against every
        earlier key (causal, FP8, `_setup_indexer`), the fp32 logits written and read back by top-k, the FP8 keys
        read once. Runs on sparse prompt steps and verification chunks; within top-k keys SGLang and TensorRT-LLM
        store the index keys and skip the scoring (`SKIPS_SHORT_INDEXER`), vLLM scores."""
        if not self.model.index_n_heads:
            return 0.0
        pairs = q * (c + 0.5 * q)
        keys = (c + q) * (self.model.index_head_dim + INDEXER_KEY_SCALE_BYTES)
        return max(pairs * self._idx_pair_flops / self._idx_flops, (pairs * INDEXER_LOGIT_BYTES + keys) / self.attn_bw)

    def _indexer_proj(self, m: int) -> float:
        """The indexer's projections of m tokens on every DSA layer, unsharded (`_setup_indexer`): `wq_b` from the
        q latent to index_n_heads x index_head_dim, `wk` from the hidden state to one key, `weights_proj` to one
        weight per head (kept in bf16 like the router)."""
        mod = self.model
        if not (mod.index_n_heads and mod.attention_topk and mod.q_lora_rank):
            return 0.0
        n, d = mod.index_n_heads, mod.index_head_dim
        wq = self.gemm("q_b", m, mod.q_lora_rank, n * d, module="attention")
        wk = self.gemm("kv_a", m, self.h, d, module="attention")
        return self.n_full * (wq + wk + self.gemm("router", m, self.h, n, unquantised=True))

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
        for layers, cap, full in ((self.n_full, mod.attention_topk, True), (self.n_local, mod.sliding_window, False)):
            if layers:
                seen = ctx_r if cap is None else nr * np.minimum(ctx_r / nr, float(cap))
                t = t + layers * self._tok_s * seen
                if full and cap is not None:  # DSA: the indexer scores every cached key (not on windowed layers)
                    t = t + layers * self._idx_key_s * ctx_r
        if self.n_lin:
            t = t + self.n_lin * nr * self._lin_seq_s
        return t

    def _coef(self, n: int) -> float:
        """Seconds per unit of the instance's context sum (full layers; the busiest rank's share)."""
        return self.n_full * self._tok_s * ((-(-n // self.dp)) / n) if n else 0.0
