"""DSA (DeepSeek Sparse Attention) and Gated DeltaNet prompt pricing by hand: the lightning indexer's replicated
projections, its FP8 O(L^2) scoring with fp32 logits and top-k, the sparse absorbed MLA past top-k keys with
SGLang's and vLLM's head padding, each engine's path within top-k, and the chunked delta rule's FLOPs
(sim.costmodel.structured_attention, gdn)."""

from __future__ import annotations

import pytest

from hwprofiles import catalog
from sim.costmodel.engine import ServingEngineConfig
from sim.costmodel.gdn import chunk_flops_per_token
from sim.costmodel.quant import Quantization
from sim.costmodel.structured import StructuredCost
from sim.costmodel.structured_attention import sparse_heads
from tests.test_costmodel_moe_kernels import TOY_GDN
from tests.test_costmodel_structured import EXACT, GPU, TOY_MLA

# 2 MLA layers, 4 heads, latent 32 + rope 8; top-8 keys per query; a 2-head x 16 indexer
TOY_DSA = TOY_MLA.model_copy(update={"q_lora_rank": 16, "attention_topk": 8, "index_n_heads": 2, "index_head_dim": 16})
FAST_MEM = GPU.model_copy(update={"mem_bw": 1e18})  # every kernel compute-bound
FAST_MATH = GPU.model_copy(update={"bf16_flops": 1e18, "fp8_flops": 2e18})  # every kernel memory-bound


def test_indexer_scoring_flops_and_bytes_by_hand() -> None:
    # 16 new tokens, none cached: 16 x 8 causal pairs, 2 x 2 heads x 16 FP8 FLOPs each at the FP8 peak (2e12)
    compute = StructuredCost(EXACT, TOY_DSA, FAST_MEM, 1)
    assert compute._indexer(16, 0) == pytest.approx(16 * 8 * 64 / 2e12, rel=1e-12)
    # bytes: an fp32 logit written and read per pair, each key's 16 FP8 values and fp32 scale read once
    memory = StructuredCost(EXACT, TOY_DSA, FAST_MATH, 1)
    assert memory._indexer(16, 0) == pytest.approx((16 * 8 * 8 + 16 * 20) / 1e9, rel=1e-12)
    # after 100 cached tokens each query scores them all: 16 x (100 + 8) pairs
    assert compute._indexer(16, 100) == pytest.approx(16 * 108 * 64 / 2e12, rel=1e-12)


def test_indexer_grows_quadratically_with_the_prompt() -> None:
    for gpu in (FAST_MEM, FAST_MATH):
        cost = StructuredCost(EXACT, TOY_DSA, gpu, 1)
        assert cost._indexer(8000, 0) / cost._indexer(4000, 0) == pytest.approx(4.0, rel=0.01)
    # while the sparse attention after it grows linearly once every query sees its top-k keys
    sparse = StructuredCost(EXACT, TOY_DSA, FAST_MEM, 1)
    assert sparse._sparse_mla(8000, 0, 8) / sparse._sparse_mla(4000, 0, 8) == pytest.approx(2.0, rel=1e-9)


def test_prompts_within_top_k_by_engine() -> None:
    # 6 new tokens after 2 cached: 8 keys, within top-8. Per layer by hand (every kernel compute-bound):
    # indexer 6 x (2 + 3) causal pairs x 64 FP8 FLOPs at 2e12; absorbed sparse MLA 4 heads x 144 FLOPs x 30 pairs
    idx, sparse = 6 * 5 * 64 / 2e12, 4 * 144 * 6 * 5 / 1e12
    engines = {k: ServingEngineConfig(kind=k) for k in ("sglang", "vllm-v1", "trtllm")}
    # SGLang: dense MHA on the decompressed latent, the indexer only stores keys - as the same model without DSA
    dense = StructuredCost(EXACT, TOY_MLA, FAST_MEM, 1, engine=engines["sglang"])
    sgl = StructuredCost(EXACT, TOY_DSA, FAST_MEM, 1, engine=engines["sglang"])
    assert sgl._prefill_one(6, 2) == dense._prefill_one(6, 2)
    # vLLM: the indexer and the sparse kernel on every prompt
    vllm = StructuredCost(EXACT, TOY_DSA, FAST_MEM, 1, engine=engines["vllm-v1"])
    assert vllm._prefill_one(6, 2) == pytest.approx(2 * (idx + sparse), rel=1e-12)
    # TensorRT-LLM: the sparse kernel, the indexer skipped (skip_indexer_for_short_seqs)
    trt = StructuredCost(EXACT, TOY_DSA, FAST_MEM, 1, engine=engines["trtllm"])
    assert trt._prefill_one(6, 2) == pytest.approx(2 * sparse, rel=1e-12)


def test_prompts_past_top_k_pay_the_indexer_and_the_sparse_kernel() -> None:
    # 64 new tokens, none cached, 2 layers: indexer 64 x 32 causal pairs x 64 FLOPs at 2e12; sparse MLA 64 queries x
    # min(32, 8) keys x 4 heads x 144 FLOPs at 1e12 - not the latent decompression
    want = 2 * (64 * 32 * 64 / 2e12 + 64 * 8 * 4 * 144 / 1e12)
    for kind in ("sglang", "vllm-v1", "trtllm"):
        dsa = StructuredCost(EXACT, TOY_DSA, FAST_MEM, 1, engine=ServingEngineConfig(kind=kind))
        assert dsa._prefill_one(64, 0) == pytest.approx(want, rel=1e-12)


def test_sparse_mla_flops_by_hand_and_head_padding() -> None:
    # absorbed form per query-key pair on each head: 2 (32 + 8) for the score, 2 x 32 for the value = 144;
    # 64 queries x min(0 + 32, 8) keys (the causal half capped at top-k), in BF16 (1e12)
    plain = StructuredCost(EXACT, TOY_DSA, FAST_MEM, 1)
    assert plain._sparse_mla(64, 0, 8) == pytest.approx(4 * 144 * 64 * 8 / 1e12, rel=1e-12)
    fp8_kv = Quantization(kv_cache="fp8")
    for name, tile in (("h200", 64), ("b200", 128)):
        gpu = FAST_MEM.model_copy(update={"name": name})
        for kind in ("sglang", "vllm-v1"):  # FlashMLA's BF16 sparse prefill: 64 heads on Hopper, 128 on Blackwell
            padded = StructuredCost(EXACT, TOY_DSA, gpu, 1, engine=ServingEngineConfig(kind=kind))
            assert padded._sparse_heads == tile
            assert padded._sparse_mla(64, 0, 8) == pytest.approx(4 * 144 * 64 * 8 / 1e12 * tile / 4, rel=1e-12)
        # vLLM with an FP8 cache and < 32 heads per rank: the FP8 sparse decode kernel, padded to 64 on both
        vllm_fp8 = StructuredCost(EXACT, TOY_DSA, gpu, 1, engine=ServingEngineConfig(kind="vllm-v1"), quant=fp8_kv)
        assert vllm_fp8._sparse_heads == 64
        trt = StructuredCost(EXACT, TOY_DSA, gpu, 1, engine=ServingEngineConfig(kind="trtllm"))
        assert trt._sparse_heads == 4
    # from 32 heads per rank vLLM's FP8 cache takes the BF16 prefill kernel again; 65..128 heads pad to 128
    assert sparse_heads("vllm-v1", "b200", 32, True) == 128 and sparse_heads("vllm-v1", "h200", 32, True) == 64
    assert sparse_heads("vllm-v1", "b200", 16, True) == 64 and sparse_heads("vllm-v1", "b200", 16, False) == 128
    assert sparse_heads("sglang", "b200", 16, True) == 128 and sparse_heads("vllm-v1", "toy", 16, True) == 16


def test_indexer_projections_are_replicated_and_only_on_dsa_models() -> None:
    dsa = StructuredCost(EXACT, TOY_DSA, GPU, 2)
    no_idx = StructuredCost(EXACT, TOY_DSA.model_copy(update={"index_n_heads": 0}), GPU, 2)
    # wq_b: q latent 16 -> 2 x 16, wk: hidden 64 -> 16, weights_proj: 64 -> 2 in bf16, on both layers, unsharded
    want = 2 * (dsa.gemm("q_b", 10, 16, 32) + dsa.gemm("kv_a", 10, 64, 16) + dsa.gemm("router", 10, 64, 2))
    got = dsa._proj(10)["qkv_proj"] - no_idx._proj(10)["qkv_proj"]
    assert got == pytest.approx(want, rel=1e-12) and want > 0
    assert StructuredCost(EXACT, TOY_MLA, GPU, 2)._indexer_proj(10) == 0.0


def test_decode_pays_the_indexer_on_every_cached_key() -> None:
    import numpy as np

    dsa = StructuredCost(EXACT, TOY_DSA, FAST_MATH, 1)
    no_idx = StructuredCost(EXACT, TOY_DSA.model_copy(update={"index_n_heads": 0}), FAST_MATH, 1)
    ctx = np.array([3 * 500.0])  # three sequences of 500 tokens
    diff = dsa._decode_attn(3, ctx)[0] - no_idx._decode_attn(3, ctx)[0]
    # per key: the 16 FP8 values + fp32 scale read, the fp32 logit written and read back: 28 bytes at 1e9 B/s
    assert diff == pytest.approx(2 * 1500 * 28 / 1e9, rel=1e-12)


def test_dense_catalogue_models_price_no_indexer() -> None:
    for name in ("deepseek-v3", "llama-2-7b", "qwen3.5-397b-a17b"):
        cost = StructuredCost(EXACT, catalog.model(name), GPU, 8)
        assert cost._indexer_proj(100) == 0.0 and cost._idx_key_s == 0.0
    glm = catalog.model("glm-5")
    assert (glm.attention_topk, glm.index_n_heads, glm.index_head_dim) == (2048, 32, 128)


def _matmul_flops(shapes: list[tuple[int, int, int]]) -> float:
    return sum(2.0 * m * n * k for m, n, k in shapes)


def _one_chunk(d: int, c: int = 64) -> float:
    """The chunked delta rule's FLOPs for one chunk of c tokens on one value head, from its matmul shapes (m, n, k):
    A = K K^T, w = A K, u = A V, v_new = u - w S, S += K^T v_new, o = Q S + (Q K^T) v_new; plus the triangular
    solve of A (c^3 / 3 multiply-adds)."""
    shapes = [(c, c, d), (c, d, c), (c, d, c), (c, d, d), (d, d, c), (c, d, d), (c, c, d), (c, d, c)]
    return _matmul_flops(shapes) + 2.0 * c**3 / 3.0


def test_chunked_delta_rule_flops_by_hand() -> None:
    for d in (16, 128):
        assert chunk_flops_per_token(d) == pytest.approx(_one_chunk(d) / 64, rel=1e-12)
    # the toy GDN layer (4 value heads of 16) on one 64-token chunk, at 1e12 FLOP/s, plus its state read + write
    lin = StructuredCost(EXACT, TOY_GDN, FAST_MEM, 1)
    full = StructuredCost(EXACT, TOY_GDN.model_copy(update={"attention_pattern": "FF"}), FAST_MEM, 1)
    one_full = full._prefill_one(64, 0) / 2
    want = 4 * _one_chunk(16) / 1e12 + lin._lin_seq_s
    assert lin._prefill_one(64, 0) - one_full == pytest.approx(want, rel=1e-9)
