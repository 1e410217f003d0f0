"""MoE, MLA, local attention, quantisation and parallel layouts in the cost model: hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwprofiles import catalog
from hwprofiles.specs import GPUSpec, ModelSpec
from sim.config.scenario import load_scenario
from sim.costmodel import moe
from sim.costmodel.build import build_physical
from sim.costmodel.engine import preset
from sim.costmodel.layout import Layout
from sim.costmodel.models import RooflineCost, RooflineCostConfig
from sim.costmodel.quant import Quantization
from sim.costmodel.structured import StructuredCost
from sim.errors import ServesimError

# Round numbers so every expected value below is arithmetic on literals.
GPU = GPUSpec(
    name="toy",
    memory_bytes=80e9,
    bf16_flops=1e12,
    fp8_flops=2e12,
    mem_bw=1e9,
    intra_node_bw=1e8,
    host_link_bw=1e8,
    price_per_hour=1.0,
    tdp_w=100,
)
EXACT = RooflineCostConfig(efficiency="constant", compute_efficiency=1.0, memory_efficiency=1.0, link_efficiency=1.0)
TOY_MOE = ModelSpec(
    name="toy-moe",
    num_layers=1,
    hidden_size=64,
    num_heads=4,
    num_kv_heads=4,
    head_dim=16,
    intermediate_size=128,
    moe_intermediate_size=32,
    num_experts=8,
    experts_per_token=2,
    num_shared_experts=1,
    vocab_size=100,
    max_context=1024,
)
TOY_MLA = ModelSpec(
    name="toy-mla",
    num_layers=2,
    hidden_size=64,
    num_heads=4,
    num_kv_heads=4,
    head_dim=24,  # qk_nope 16 + qk_rope 8
    v_head_dim=16,
    kv_lora_rank=32,
    qk_rope_head_dim=8,
    intermediate_size=128,
    vocab_size=100,
    max_context=1024,
)


def test_moe_layer_flops_and_bytes_by_hand() -> None:
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 1)
    ops = cost._mlp(4, 4)
    # 4 tokens x top-2 = 8 token-expert pairs; experts hit: 8 * (1 - (6/8)^4) = 5.46875
    active = 8 * (1 - 0.75**4)
    assert active == pytest.approx(5.46875)
    router = max(2 * 4 * 64 * 8 / 1e12, (64 * 8 + 4 * 64 + 4 * 8) * 2 / 1e9)
    # up: 8 pairs x 64 -> 2*32 (gate+up), weights of 5.47 experts read once; memory-bound
    up = max(2 * 8 * 64 * 64 / 1e12, (64 * 64 * active + 8 * 64 + 8 * 64) * 2 / 1e9)
    down = max(2 * 8 * 32 * 64 / 1e12, (32 * 64 * active + 8 * 32 + 8 * 64) * 2 / 1e9)
    assert ops["moe_experts"] == pytest.approx(router + up + down, rel=1e-12)
    # the shared expert runs dense on every token (width 32)
    shared_up = max(2 * 4 * 64 * 64 / 1e12, (64 * 64 + 4 * 64 + 4 * 64) * 2 / 1e9)
    assert ops["mlp_up"] == pytest.approx(shared_up, rel=1e-12)
    assert ops["moe_comm"] == 0.0  # no expert parallelism


def test_fp8_gemm_halves_weight_bytes_and_doubles_peak() -> None:
    q = Quantization(weights="fp8", activations="fp8")
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 1, quant=q)
    big = cost.gemm("x", 8192, 8192, 8192)  # compute-bound
    assert big == pytest.approx(2 * 8192**3 / 2e12)
    small = cost.gemm("x", 1, 1024, 1024)  # memory-bound: 1-byte weights and activations
    assert small == pytest.approx((1024 * 1024 + 1024 + 1024) * 1 / 1e9)
    w4 = StructuredCost(EXACT, TOY_MOE, GPU, 1, quant=Quantization(weights="int4"))
    # weight-only int4: 4.5 bits per weight read, bf16 activations, bf16 peak
    assert w4.gemm("x", 1, 1024, 1024) == pytest.approx((1024 * 1024 * 4.5 / 8 + (1024 + 1024) * 2) / 1e9)
    assert w4.gemm("x", 8192, 8192, 8192) == pytest.approx(2 * 8192**3 / 1e12)


def test_mla_decode_step_by_hand() -> None:
    cost = StructuredCost(EXACT, TOY_MLA, GPU, 1)
    # absorbed decode per context token per layer: scores 2*4*(32+8) + values 2*4*32 FLOPs; reads (32+8)*2 bytes
    per_tok = max((2 * 4 * 40 + 2 * 4 * 32) / 1e12, 40 * 2 / 1e9)
    ctx = np.array([1000.0, 3000.0])
    assert np.allclose(cost._decode_attn(2, ctx), 2 * per_tok * ctx, rtol=1e-12)
    # latent + rope key cached once per layer, not per head: 2 layers x 40 elements x 2 bytes
    assert TOY_MLA.kv_bytes_per_token() == 2 * 40 * 2
    assert TOY_MLA.kv_bytes_per_token(tp=4) == 2 * 40 * 2  # every TP rank holds the whole latent
    assert TOY_MLA.kv_bytes_per_token(kv_bits=8) == 2 * 40


def test_kv_bytes_per_token_of_catalogue_models() -> None:
    assert catalog.model("deepseek-v3").kv_bytes_per_token() == 61 * (512 + 64) * 2
    assert catalog.model("llama-3.1-8b").kv_bytes_per_token() == 32 * 2 * 8 * 128 * 2
    assert catalog.model("llama-3.1-8b").kv_bytes_per_token(tp=4) == 32 * 2 * 2 * 128 * 2
    oss = catalog.model("gpt-oss-120b")  # 18 full + 18 sliding(128) layers, 8 KV heads x 64
    per_layer = 2 * 8 * 64 * 2
    assert oss.kv_bytes_per_token(context=4096) == pytest.approx(per_layer * (18 + 18 * 128 / 4096))
    assert oss.kv_bytes_per_token(context=100) == pytest.approx(per_layer * 36)
    q35 = catalog.model("qwen3.5-397b-a17b")  # 15 full layers; 45 linear layers keep a fixed state
    assert q35.kv_bytes_per_token() == 15 * 2 * 2 * 256 * 2
    assert q35.state_bytes_per_sequence() == 45 * 64 * 128 * 128 * 4


def test_quantised_weight_bytes() -> None:
    m = catalog.model("llama-3.1-8b")
    emb = 2 * 128256 * 4096
    fp8 = Layout(tp=1).weight_bytes_per_gpu(m, Quantization(weights="fp8", activations="fp8"))
    assert fp8 == pytest.approx(emb * 2 + (m.num_params - emb) * 1)
    ds = catalog.model("deepseek-v3")
    lay = Layout(tp=8, ep=8, moe_tp=1)
    per_gpu = lay.weight_bytes_per_gpu(ds, Quantization(weights="fp8", activations="fp8"))
    # ~671 GB of fp8 weights over 8 GPUs, embeddings in bf16: 84-86 GB each
    assert 84e9 < per_gpu < 86e9
    assert Layout(tp=2).weight_bytes_per_gpu(m) == m.weight_bytes(2)


@pytest.mark.parametrize(("tokens", "k", "ep"), [(1, 8, 8), (16, 8, 8), (64, 8, 32), (512, 4, 4), (3, 2, 64)])
def test_imbalance_matches_monte_carlo(tokens: int, k: int, ep: int) -> None:
    rng = np.random.default_rng(np.random.SeedSequence(13))
    E = 256
    trials = max(300, min(4000, 100_000 // tokens))
    maxes = np.empty(trials)
    for t in range(trials):  # each token routes to k distinct experts, uniformly
        experts = np.argpartition(rng.random((tokens, E)), k, axis=1)[:, :k].ravel()
        loads = np.bincount(experts % ep, minlength=ep)  # experts dealt round-robin to EP ranks
        maxes[t] = loads.max()
    mc = maxes.mean() / (tokens * k / ep)
    assert moe.imbalance(tokens, k, ep) == pytest.approx(mc, rel=0.04)


def test_imbalance_limits() -> None:
    assert moe.imbalance(100, 8, 1) == 1.0
    assert moe.imbalance(1, 1, 8) == pytest.approx(8.0)  # one pair: the busiest rank has all of it
    assert 1.0 < moe.imbalance(100000, 8, 8) < 1.02  # law of large numbers


def test_attention_dp_takes_the_busiest_rank() -> None:
    dp = StructuredCost(EXACT, TOY_MOE, GPU, 1, layout=Layout(tp=1, attention_dp=4, ep=4, moe_tp=1))
    one = StructuredCost(EXACT, TOY_MOE, GPU, 1)
    ctx = np.array([4000.0])
    # 5 sequences over 4 ranks: the busiest has 2 of them, i.e. 2/5 of the context
    assert dp._decode_attn(5, ctx)[0] == pytest.approx(one._decode_attn(5, ctx * 2 / 5)[0])
    assert dp._prefill_ranks([(100, 0), (100, 0), (50, 0)]) == pytest.approx(one._prefill_ranks([(100, 0)]))


def test_expert_parallel_all_to_all_on_the_link() -> None:
    lay = Layout(tp=1, attention_dp=4, ep=4, moe_tp=1)
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 1, layout=lay, engine=preset("trtllm"))  # one_sided
    ops = cost._mlp(10, 40)
    # each rank sends its 10 tokens once to every other rank owning one of its 2 experts (8 experts, 2 per rank:
    # a rank is hit with probability 1 - C(6, 2) / C(8, 2) = 13/28, so 3 x 13/28 remote copies), 64 x 2 bytes
    # each, in the dispatch (18 us fixed) and back in the combine (31 us fixed)
    sent = 10 * (3 * 13 / 28) * 64 * 2 / 1e8
    assert ops["moe_comm"] == pytest.approx((18e-6 + sent) + (31e-6 + sent))


def test_vllm_all_gathers_every_token_and_reduce_scatters_the_outputs() -> None:
    # vLLM's default allgather_reducescatter: each GPU receives the other 3 DP ranks' 10 tokens (64 bf16 values)
    # and sends its experts' partial outputs of all 40 tokens back reduce-scattered (again 3 x 10 x 64 x 2 bytes
    # per GPU), two NCCL collectives at the engine's NCCL latency, on the 1e8 B/s link
    lay = Layout(tp=1, attention_dp=4, ep=4, moe_tp=1)
    eng = preset("vllm-v1")
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 1, layout=lay, engine=eng)
    moved = 3 * 10 * 64 * 2 / 1e8
    assert cost._mlp(10, 40)["moe_comm"] == pytest.approx(2 * eng.nccl_latency_s + 2 * moved, rel=1e-12)
    # not deduplicated: more than the one-sided kernel's 3 x 13/28 copies per token would send
    one = StructuredCost(EXACT, TOY_MOE, GPU, 1, layout=lay, engine=preset("trtllm"))
    assert cost._mlp(10, 40)["moe_comm"] > one._mlp(10, 40)["moe_comm"]
    # tp 2 inside each of 2 DP ranks: the same gather over the DP group, then the TP all-reduce of the output
    lay2 = Layout(tp=2, attention_dp=2, ep=4, moe_tp=1)
    c2 = StructuredCost(EXACT, TOY_MOE, GPU, 2, layout=lay2, engine=eng)
    ar = c2._allreduce(10)
    assert ar > 0
    assert c2._mlp(10, 20)["moe_comm"] == pytest.approx(2 * eng.nccl_latency_s + 10 * 64 * 4 / 1e8 + ar, rel=1e-12)


def test_plain_dense_bf16_keeps_the_roofline() -> None:
    m, g = catalog.model("llama-3.1-8b"), catalog.gpu("h100")
    assert type(build_physical(RooflineCostConfig(), m, g, 1)) is RooflineCost
    q = Quantization(weights="fp8", activations="fp8")
    assert isinstance(build_physical(RooflineCostConfig(), m, g, 1, quant=q), StructuredCost)


def test_decode_run_matches_coefficients() -> None:
    cost = build_physical(
        RooflineCostConfig(),
        catalog.model("deepseek-v3"),
        catalog.gpu("h200"),
        8,
        layout=Layout(tp=8, ep=8, moe_tp=1),
        quant=Quantization(weights="fp8", activations="fp8"),
    )
    coeffs = cost.decode_coeffs(32)
    assert coeffs is not None  # affine in context: no window, no linear layers, no measured attention
    a, b = coeffs
    ctx = np.array([1000.0, 50000.0])
    assert np.array_equal(cost.decode_run(32, ctx), a + b * ctx)
    assert cost.iteration([], 32, 50000) == pytest.approx(float(cost.decode_run(32, np.array([50000.0]))[0]))


BASE = {
    "model": "llama-3.1-8b",
    "hardware": "h100",
    "workload": {
        "arrival": {"kind": "poisson", "rate": 1},
        "num_requests": 2,
        "lengths": {"kind": "fixed", "prompt": 10, "output": 2},
    },
}


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"cluster": {"tp": 2, "ep": 2}}, "needs a mixture-of-experts model"),
        ({"quantization": {"weights": "fp4", "activations": "fp4"}}, "does not have"),
        ({"hardware": "a100", "quantization": {"weights": "fp8", "activations": "fp8"}}, "FP8 tensor cores"),
        ({"model": "qwen3-30b-a3b", "cluster": {"tp": 4, "ep": 2, "moe_tp": 1}}, "moe_tp x ep"),
        ({"model": "qwen3-30b-a3b", "cluster": {"tp": 3, "ep": 3}}, "does not divide"),
        ({"quantization": {"weights": "int4", "activations": "fp8"}}, "weight-only"),
    ],
)
def test_unsupported_combinations_are_one_line(patch: dict, needle: str) -> None:
    with pytest.raises(ServesimError) as e:
        load_scenario({**BASE, **patch})
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_kv_capacity_follows_the_deployment() -> None:
    from sim.core.engine import capacity

    base = {**BASE, "model": "qwen3-30b-a3b", "hardware": "h200"}
    one = capacity(load_scenario(base))
    fp8 = capacity(load_scenario({**base, "quantization": {"weights": "fp8", "activations": "fp8", "kv_cache": "fp8"}}))
    dp = capacity(load_scenario({**base, "cluster": {"tp": 1, "attention_dp": 4, "ep": 4, "moe_tp": 1}}))
    m = catalog.model("qwen3-30b-a3b")
    # fp8 weights free ~half the weight bytes; fp8 KV halves a token's bytes
    assert fp8.weight_bytes_per_gpu == pytest.approx(m.embedding_params * 2 + (m.num_params - m.embedding_params))
    assert fp8.bytes_per_block == pytest.approx(one.bytes_per_block / 2)
    # 4 attention-DP ranks, each caching its own sequences; experts split 4 ways
    assert dp.bytes_per_block == pytest.approx(one.bytes_per_block / 4)
    assert dp.weight_bytes_per_gpu < one.weight_bytes_per_gpu / 2


def _fa_layer(q: float, keys: float, width: float, peak: float) -> float:
    """One layer of the measured FlashAttention model (sim/costmodel/attention.py DEFAULT), by hand."""
    eff = 0.4703 * q / (q + 20.45) * keys / (keys + 693.1)
    return 1.062e-05 + 4.0 * width * q * keys / (peak * eff)


def test_structured_prefill_attention_uses_the_measured_flashattention_efficiency() -> None:
    """With efficiency curves the structured roofline prices prefill attention as RooflineCost does (the
    A100-fitted FlashAttention efficiency on this GPU's bf16 peak), not at compute_efficiency: an FP8-weight
    dense model (structured) and the same model in bf16 (plain roofline) give the same kernel time."""
    m, g = catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm")
    fp8 = Quantization(weights="fp8", activations="fp8")
    s = build_physical(RooflineCostConfig(), m, g, 1, quant=fp8)
    r = build_physical(RooflineCostConfig(), m, g, 1)
    assert isinstance(s, StructuredCost) and type(r) is RooflineCost
    hq = m.num_heads * m.head_dim
    for q, c in ((4096, 0), (512, 3584), (64, 100)):
        want = m.num_layers * _fa_layer(q, q + c, hq, g.bf16_flops)
        assert s.breakdown([(q, c)], 0, 0)["attn_prefill"] == pytest.approx(want, rel=1e-9)
        assert r.breakdown([(q, c)], 0, 0)["attn_prefill"] == pytest.approx(want, rel=1e-9)
    # 4096 new tokens: the measured kernel is ~3.5x the spec-sheet causal roofline at 70 % (what it used to be)
    roof = m.num_layers * 4.0 * hq * 4096 * 2048 / (g.bf16_flops * 0.7)
    assert 3.0 < s.breakdown([(4096, 0)], 0, 0)["attn_prefill"] / roof < 4.0
    assert "FlashAttention" in s.provenance["attention"]
    const = build_physical(RooflineCostConfig(efficiency="constant"), m, g, 1, quant=fp8)
    assert const.breakdown([(4096, 0)], 0, 0)["attn_prefill"] == pytest.approx(roof, rel=1e-9)


def test_windowed_and_mla_prefill_attention_by_hand() -> None:
    """A windowed layer's queries see at most `sliding_window` keys; MLA runs MHA at (qk + v) / 2 width."""
    g = catalog.gpu("h100-sxm")
    oss = catalog.model("gpt-oss-120b")
    s = build_physical(RooflineCostConfig(), oss, g, 1, quant=Quantization(weights="fp4", activations="fp8"))
    assert isinstance(s, StructuredCost) and oss.sliding_window
    hq = oss.num_heads * oss.head_dim
    q = 4096
    want = s.n_full * _fa_layer(q, q, hq, g.bf16_flops) + s.n_local * _fa_layer(q, oss.sliding_window, hq, g.bf16_flops)
    assert s._prefill_one(q, 0) == pytest.approx(want, rel=1e-9)
    ds = catalog.model("deepseek-v3")
    mla = build_physical(RooflineCostConfig(), ds, g, 8, quant=Quantization(weights="fp8", activations="fp8"))
    assert isinstance(mla, StructuredCost) and ds.is_mla
    hd = ds.num_heads // 8
    width = hd * (ds.head_dim + ds.value_dim) / 2.0
    up = mla.gemm("kv_b", q, float(ds.kv_lora_rank or 0), hd * (ds.head_dim - ds.qk_rope_head_dim + ds.value_dim))
    want = mla.n_full * (up + _fa_layer(q, q, width, g.bf16_flops))
    assert mla._prefill_one(q, 0) == pytest.approx(want, rel=1e-9)


def test_fp8_kv_cache_runs_prefill_attention_at_the_fp8_peak() -> None:
    """An FP8 KV cache means FP8 attention kernels: the measured efficiency applies to the FP8 peak; a GPU
    without FP8 (A100) keeps its bf16 peak."""
    m, h100, a100 = catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm"), catalog.gpu("a100-80g")
    kv8 = Quantization(weights="fp8", activations="fp8", kv_cache="fp8")
    s = build_physical(RooflineCostConfig(), m, h100, 1, quant=kv8)
    hq = m.num_heads * m.head_dim
    fp8 = h100.fp8_flops
    assert fp8 is not None and fp8 == pytest.approx(2 * h100.bf16_flops, rel=1e-3)
    want = m.num_layers * _fa_layer(4096, 4096, hq, fp8)
    assert s.breakdown([(4096, 0)], 0, 0)["attn_prefill"] == pytest.approx(want, rel=1e-9)
    bf16_kv = build_physical(RooflineCostConfig(), m, h100, 1, quant=Quantization(weights="fp8", activations="fp8"))
    assert s.breakdown([(4096, 0)], 0, 0)["attn_prefill"] < 0.55 * bf16_kv.breakdown([(4096, 0)], 0, 0)["attn_prefill"]
    assert a100.fp8_flops is None
    old = build_physical(RooflineCostConfig(), m, a100, 1, quant=Quantization(kv_cache="fp8"))
    want = m.num_layers * _fa_layer(4096, 4096, hq, a100.bf16_flops)
    assert old.breakdown([(4096, 0)], 0, 0)["attn_prefill"] == pytest.approx(want, rel=1e-9)


def test_fp8_kv_cache_keeps_bf16_attention_where_no_fp8_kernel_exists() -> None:
    """L40S and RTX PRO 6000 have FP8 tensor cores but no FP8 attention kernel in the engines (FlashAttention
    3 is Hopper-only): their prefill attention with an FP8 cache is priced at the BF16 peak."""
    m = catalog.model("llama-3.1-8b")
    hq = m.num_heads * m.head_dim
    for name in ("l40s", "rtx-pro-6000"):
        g = catalog.gpu(name)
        assert g.fp8_flops is not None
        kv8 = build_physical(RooflineCostConfig(), m, g, 1, quant=Quantization(kv_cache="fp8"))
        want = m.num_layers * _fa_layer(4096, 4096, hq, g.bf16_flops)
        assert kv8.breakdown([(4096, 0)], 0, 0)["attn_prefill"] == pytest.approx(want, rel=1e-9)


def _exact_busiest_one_token(k: int, E: int, ep: int) -> float:
    """E[max over ranks of a token's experts on that rank], exactly: the k experts are a uniform k-subset of E,
    dealt to ranks of E / ep experts; enumerate every split of k over the ranks (multivariate hypergeometric)."""
    from itertools import product
    from math import comb

    local, total, out = E // ep, comb(E, k), 0.0
    for counts in product(range(min(k, local) + 1), repeat=ep):
        if sum(counts) == k:
            out += max(counts) * np.prod([comb(local, c) for c in counts]) / total
    return out


def test_busiest_rank_active_experts_one_token_exactly() -> None:
    # toy: 2 of 8 experts over 4 ranks of 2: both on one rank with probability 4 / C(8, 2) = 1/7, else 1 each
    assert _exact_busiest_one_token(2, 8, 4) == pytest.approx(1 + 1 / 7, rel=1e-12)
    # the independent-binomial reading: p = 1/4, F(0) = (3/4)^2, F(1) = 1 - (1/4)^2 -> E = 2 - F0^4 - F1^4
    by_hand = 2 - (9 / 16) ** 4 - (15 / 16) ** 4
    assert moe.busiest_active_experts(1, 2, 8, 4) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(1 + 1 / 7, rel=0.02)
    # DeepSeek-V3 routing, one token, EP 8: the mean rank touches 1 expert, the busiest ~2.5
    assert moe.active_experts(1, 8, 256, 32) == pytest.approx(1.0)
    assert moe.busiest_active_experts(1, 8, 256, 8) == pytest.approx(_exact_busiest_one_token(8, 256, 8), rel=0.03)
    assert moe.busiest_active_experts(1, 8, 256, 8) > 2.4


@pytest.mark.parametrize(
    ("tokens", "k", "E", "ep"), [(4, 8, 256, 8), (16, 8, 256, 4), (8, 10, 512, 8), (64, 8, 256, 32)]
)
def test_busiest_rank_active_experts_matches_monte_carlo(tokens: int, k: int, E: int, ep: int) -> None:
    rng = np.random.default_rng(np.random.SeedSequence(7))
    trials = 1500
    hit = np.zeros((trials, E), dtype=bool)
    for _ in range(tokens):  # every token routes to k distinct experts, uniformly
        picks = np.argpartition(rng.random((trials, E)), k, axis=1)[:, :k]
        np.put_along_axis(hit, picks, True, axis=1)
    mc = hit.reshape(trials, ep, E // ep).sum(axis=2).max(axis=1).mean()
    assert moe.busiest_active_experts(tokens, k, E, ep) == pytest.approx(mc, rel=0.03)
    # never fewer than the mean rank's, never more than a rank holds; ep 1 is the mean
    assert moe.active_experts(tokens, k, E, E / ep) < moe.busiest_active_experts(tokens, k, E, ep) <= E // ep
    assert moe.busiest_active_experts(tokens, k, E, 1) == pytest.approx(moe.active_experts(tokens, k, E, E))


def test_expert_parallel_decode_streams_the_busiest_ranks_experts() -> None:
    # one token, top-2 of 8 experts, EP 4 over tp 4: the layer waits for the GPU that must read the most expert
    # weights, 2 - (9/16)^4 - (15/16)^4 = 1.1274 experts' matrices, not the mean rank's 0.5
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 4, layout=Layout(tp=4, ep=4, moe_tp=1))
    active = 2 - (9 / 16) ** 4 - (15 / 16) ** 4
    pairs = 2 / 4 * moe.imbalance(1, 2, 4)  # busiest rank's pairs: 2 pairs in 4 ranks, both on one w.p. 1/4
    assert pairs == pytest.approx(1.25)
    router = max(2 * 64 * 8 / 1e12, (64 * 8 + 64 + 8) * 2 / 1e9)
    up = max(2 * pairs * 64 * 64 / 1e12, (64 * 64 * active + pairs * 64 + pairs * 64) * 2 / 1e9)
    down = max(2 * pairs * 32 * 64 / 1e12, (32 * 64 * active + pairs * 32 + pairs * 64) * 2 / 1e9)
    assert cost._mlp(1, 1)["moe_experts"] == pytest.approx(router + up + down, rel=1e-12)


def test_mla_short_chunks_attend_in_the_absorbed_form() -> None:
    """Two query tokens (a speculative verification, k = 1) over 1,000 cached: queries against the cached latent,
    read once, as in a decode step - not the whole latent decompressed for two queries."""
    cost = StructuredCost(EXACT, TOY_MLA, GPU, 1, decode_query=2)
    # per layer: 2 queries x 1,001 keys seen x (2*4*(32+8) + 2*4*32) FLOPs; 1,002 keys x 40 elements x 2 bytes read
    absorbed = max(2 * 1001 * 576 / 1e12, 1002 * 40 * 2 / 1e9)
    # the alternative: decompress 1,002 latents (32 -> 4 heads x (16 + 16)) before attending: its GEMM alone is dearer
    up = max(2 * 1002 * 32 * 128 / 1e12, (32 * 128 + 1002 * 32 + 1002 * 128) * 2 / 1e9)
    assert up > absorbed
    assert cost._prefill_one(2, 1000) == pytest.approx(2 * absorbed, rel=1e-12)
    # one query: a decode step's attention over the same keys
    assert cost._prefill_one(1, 1000) == pytest.approx(float(cost._decode_attn(1, np.array([1001.0]))[0]), rel=1e-3)
    # chunks longer than a verification are prefills: decompressed, whatever the absorbed form would cost
    up_long = cost.gemm("kv_b", 4096, 32, 128)
    mha = up_long + cost._fmha(4096, 0, None, 4 * (24 + 16) / 2.0, 4096 * 40 * 2 + 2 * 4096 * 4 * 24 * 2)
    assert cost._prefill_one(4096, 0) == pytest.approx(2 * mha, rel=1e-12)


def test_mtp_verification_of_an_mla_model_costs_about_a_decode_step() -> None:
    """DeepSeek-V3 with MTP (one draft token): verifying 2 tokens for each of 32 sequences at 4k context reads
    the same cache and weights as a decode step of 64 tokens; it must not pay for decompressing 32 x 4k latents
    (which priced it at 3x a decode step)."""
    ds = catalog.model("deepseek-v3")
    q = Quantization(weights="fp8", activations="fp8", kv_cache="fp8")
    cost = build_physical(
        RooflineCostConfig(), ds, catalog.gpu("h200"), 8, layout=Layout(tp=8, ep=8, moe_tp=1), quant=q, decode_query=2
    )
    verify = cost.iteration([(2, 4000)] * 32, 0, 0)
    assert cost.iteration([], 32, 32 * 4000) < verify < cost.iteration([], 64, 64 * 4000)


def test_mla_prefill_tails_are_prefills_without_speculation() -> None:
    """vLLM sends only query chunks of <= 1 + num_speculative_tokens to the absorbed decode kernels
    (`reorder_batch_threshold`): without speculation a 2-token chunked-prefill tail or prefix-cache hit over
    1,000 cached tokens runs the prefill path (decompress the 1,002 latents, then FlashAttention), even though
    the absorbed form would be cheaper; with k = 4 a 5-token chunk is absorbed and a 6-token one is not."""
    plain = StructuredCost(EXACT, TOY_MLA, GPU, 1)  # no speculation: threshold 1
    absorbed = max(2 * 1001 * 576 / 1e12, 1002 * 40 * 2 / 1e9)  # per layer, as in the test above
    up = max(2 * 1002 * 32 * 128 / 1e12, (32 * 128 + 1002 * 32 + 1002 * 128) * 2 / 1e9)
    width, byts = 4 * (24 + 16) / 2.0, 1002 * 40 * 2 + 2 * 2 * 4 * 24 * 2
    mha = up + plain._fmha(2, 1000, None, width, byts)
    assert plain._prefill_one(2, 1000) == pytest.approx(2 * mha, rel=1e-12)
    assert plain._prefill_one(2, 1000) > 2 * absorbed  # the old min() priced it at the absorbed form
    spec = StructuredCost(EXACT, TOY_MLA, GPU, 1, decode_query=5)
    five = max(5 * 1002.5 * 576 / 1e12, 1005 * 40 * 2 / 1e9)
    assert spec._prefill_one(5, 1000) == pytest.approx(2 * five, rel=1e-12)
    assert spec._prefill_one(6, 1000) == pytest.approx(plain._prefill_one(6, 1000), rel=1e-12)


def test_scenario_speculation_sets_the_absorbed_threshold(tmp_path: Path) -> None:
    """The scenario's `speculative.num_tokens` reaches the cost model: 1 + k with speculation, 1 without."""
    from sim.cluster.pools import build_cost_model
    from sim.config.scenario import load_scenario
    from tests.helpers import scenario, write_csv

    sc = scenario(write_csv(tmp_path / "t.csv", [(0.0, 10, 5)]), cost={"kind": "roofline"})
    sc["model"] = TOY_MLA.model_dump()
    plain = load_scenario(sc)
    mtp = load_scenario({**sc, "speculative": {"kind": "mtp", "num_tokens": 3, "acceptance": 0.7}})
    costs = build_cost_model(plain), build_cost_model(mtp)
    assert isinstance(costs[0], StructuredCost) and isinstance(costs[1], StructuredCost)
    assert (costs[0].decode_query, costs[1].decode_query) == (1, 4)
