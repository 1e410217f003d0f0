"""DSA (DeepSeek Sparse Attention) and Gated DeltaNet prompt pricing by hand: the lightning indexer's replicated
projections, its FP8 O(L^2) scoring with fp32 logits and top-k, the sparse absorbed MLA past top-k keys with
SGLang's head padding, and the chunked delta rule's FLOPs (sim.costmodel.structured_attention, gdn)."""

from __future__ import annotations

import pytest

from hwprofiles import catalog
from sim.costmodel.engine import ServingEngineConfig
from sim.costmodel.gdn import chunk_flops_per_token
from sim.costmodel.structured import StructuredCost
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


def test_prompts_within_top_k_run_dense_and_skip_the_indexer() -> None:
    dense = StructuredCost(EXACT, TOY_MLA, FAST_MEM, 1)  # the same model without DSA
    dsa = StructuredCost(EXACT, TOY_DSA, FAST_MEM, 1)
    assert dsa._prefill_one(6, 2) == dense._prefill_one(6, 2)  # 8 keys: SGLang's dense MHA, k-only indexer
    # past top-k: each layer pays the indexer and the absorbed sparse kernel, not the latent decompression
    assert dsa._prefill_one(64, 0) == pytest.approx(2 * (dsa._indexer(64, 0) + dsa._sparse_mla(64, 0, 8)), rel=1e-12)


def test_sparse_mla_flops_by_hand_and_sglang_head_padding() -> None:
    # absorbed form per query-key pair on each head: 2 (32 + 8) for the score, 2 x 32 for the value = 144;
    # 64 queries x min(0 + 32, 8) keys (the causal half capped at top-k), in BF16 (1e12)
    plain = StructuredCost(EXACT, TOY_DSA, FAST_MEM, 1)
    assert plain._sparse_mla(64, 0, 8) == pytest.approx(4 * 144 * 64 * 8 / 1e12, rel=1e-12)
    sglang = ServingEngineConfig(kind="sglang")
    for name, tile in (("h200", 64), ("b200", 128)):
        gpu = FAST_MEM.model_copy(update={"name": name})
        padded = StructuredCost(EXACT, TOY_DSA, gpu, 1, engine=sglang)
        assert padded._sparse_heads == tile
        assert padded._sparse_mla(64, 0, 8) == pytest.approx(plain._sparse_mla(64, 0, 8) * tile / 4, rel=1e-12)
        # vLLM runs the FP8 decode kernel at low heads per rank: no padding
        vllm = StructuredCost(EXACT, TOY_DSA, gpu, 1, engine=ServingEngineConfig(kind="vllm-v1"))
        assert vllm._sparse_heads == 4


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


def test_chunked_delta_rule_flops_by_hand() -> None:
    # d = 128, C = 64: 6 d^2 = 98304, 10 C d = 81920, 2 C^2 / 3 = 2730.67
    assert chunk_flops_per_token(128) == pytest.approx(98304 + 81920 + 8192 / 3, rel=1e-12)
    # the toy GDN layer (4 value heads of 16) on q tokens: q x 4 x (1536 + 10240 + 2730.67) FLOPs at 1e12
    lin = StructuredCost(EXACT, TOY_GDN, FAST_MEM, 1)
    full = StructuredCost(EXACT, TOY_GDN.model_copy(update={"attention_pattern": "FF"}), FAST_MEM, 1)
    one_full = full._prefill_one(1000, 0) / 2
    want = 1000 * 4 * (1536 + 10240 + 8192 / 3) / 1e12 + lin._lin_seq_s
    assert lin._prefill_one(1000, 0) - one_full == pytest.approx(want, rel=1e-9)
