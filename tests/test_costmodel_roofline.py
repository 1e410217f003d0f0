"""The roofline cost model pinned to hand-computed cases, and the decode fast path bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import sim  # noqa: F401  (initialises sim before hwprofiles' catalogue)
from hwprofiles import catalog
from sim.costmodel.build import build_physical
from sim.costmodel.engine import ServingEngineConfig
from sim.costmodel.models import RooflineCost, RooflineCostConfig, TableCostConfig
from tests.helpers import PAPER_GPU, PAPER_MODEL

GPU, MODEL = PAPER_GPU, PAPER_MODEL
# constant efficiencies: attention from the spec sheet too (the measured-efficiency attention has its own tests)
CFG = RooflineCostConfig(
    compute_efficiency=0.5, memory_efficiency=0.5, link_efficiency=0.5, iteration_overhead_s=0.0, efficiency="constant"
)


def test_single_gemm_memory_and_compute_bound():
    cm = RooflineCost(CFG, MODEL, GPU, 1)
    # QKV: K = 4096, N = (32 + 2*8) * 128 = 6144; 2-byte weights; achieved 5e14 FLOP/s and 1e12 B/s
    k, n = 4096, 6144
    # M = 1: bytes (k*n + k + n) * 2 = 50,352,128 -> 50.352128 us; FLOPs 2*k*n = 50.3e6 -> 0.1 us
    assert cm.operator("attn_pre_proj", 1) == pytest.approx((k * n + k + n) * 2 / 1e12, rel=1e-12)
    assert cm.operator("attn_pre_proj", 1) == pytest.approx(50.352128e-6, rel=1e-9)
    # M = 4096: FLOPs 2*4096*k*n = 206.158e9 -> 412.3 us; bytes 2*(k*n + 4096*k + 4096*n) = 134 MB -> 134 us
    assert cm.operator("attn_pre_proj", 4096) == pytest.approx(2 * 4096 * k * n / 5e14, rel=1e-12)
    # the iteration sums L layers of it
    br = cm.breakdown([(4096, 0)], 0, 0)
    assert br["qkv_proj"] == pytest.approx(10 * 2 * 4096 * k * n / 5e14, rel=1e-12)


def test_decode_attention_reads_kv_bytes():
    cm = RooflineCost(CFG, MODEL, GPU, 1)
    # per layer per context token: K and V of 8 kv heads x 128 dims x 2 bytes = 4096 bytes -> 4.096 ns at 1e12 B/s
    # (compute 4 * hq = 16384 FLOPs -> 0.03 ns: memory-bound); 10 layers
    a, b = cm.decode_run(16, np.array([1000.0, 101000.0]))
    assert (b - a) / 100000 == pytest.approx(10 * 4096 / 1e12, rel=1e-9)
    br = cm.breakdown([], 16, 1000)
    assert br["attn_decode"] == pytest.approx(10 * 4096 / 1e12 * 1000, rel=1e-12)


def test_allreduce_ring_two_per_layer():
    cm = RooflineCost(CFG, MODEL, GPU, 4)
    m = 512
    msg = m * 4096 * 2  # bytes of the activations all-reduced
    one = 1e-5 + 2 * 3 / 4 * msg / (1e11 * 0.5)  # latency + ring traffic at the achieved link rate
    assert cm.breakdown([(m, 0)], 0, 0)["allreduce"] == pytest.approx(2 * 10 * one, rel=1e-12)
    assert RooflineCost(CFG, MODEL, GPU, 1).breakdown([(m, 0)], 0, 0)["allreduce"] == 0.0


def test_prefill_attention_causal_flops():
    cm = RooflineCost(CFG, MODEL, GPU, 1)
    q, c = 2048, 0
    flops = 4 * 4096 * q * (c + q / 2)  # QK and SV over half the square: 34.4 GFLOP per layer
    byts = ((c + q) * 2 * 1024 + 2 * q * 4096) * 2
    assert cm.breakdown([(q, c)], 0, 0)["attn_prefill"] == pytest.approx(10 * max(flops / 5e14, byts / 1e12))


def test_gpu_without_tables_constant_is_the_spec_sheet_roofline():
    # l40s has no measured tables: with `efficiency: constant` the scenario's roofline is exactly the
    # spec-sheet roofline (with the default serving engine's terms, which a scenario always has); with the
    # default curves it uses A100's transferred curves (issue 13, item 6)
    m, g = catalog.model("llama-3.1-8b"), catalog.gpu("l40s")
    cfg = RooflineCostConfig(efficiency="constant")
    built = build_physical(cfg, m, g, 1)
    direct = RooflineCost(cfg, m, g, 1, engine=ServingEngineConfig())
    ctx = np.arange(1000.0, 5000.0, 64.0)
    assert built.decode_run(8, ctx).tolist() == direct.decode_run(8, ctx).tolist()
    assert built.iteration([(700, 0), (33, 100)], 3, 999) == direct.iteration([(700, 0), (33, 100)], 3, 999)
    transferred = build_physical(RooflineCostConfig(), m, g, 1)
    assert transferred.provenance["gemm"].startswith("transferred from a100-80g")
    assert transferred.iteration([(700, 0)], 3, 999) != direct.iteration([(700, 0)], 3, 999)


@pytest.mark.parametrize(
    ("kind", "gpu", "model", "tp"),
    [
        ("roofline", "a100-80g", "llama-2-70b", 4),
        ("roofline", "h100-sxm", "llama-3.1-8b", 1),
        ("table", "a100-80g", "llama-3-8b", 2),
        ("table", "h100-sxm", "mistral-7b", 1),
    ],
)
def test_decode_run_is_elementwise_bit_for_bit(kind, gpu, model, tp):
    cfg = (RooflineCostConfig if kind == "roofline" else TableCostConfig)()
    cm = build_physical(cfg, catalog.model(model), catalog.gpu(gpu), tp)
    rng = np.random.default_rng(np.random.SeedSequence(7))
    for n in (1, 3, 64):
        ctx = np.sort(rng.integers(n, n * 9000, size=57)).astype(np.float64)
        run = cm.decode_run(n, ctx)
        one = [float(cm.decode_run(n, ctx[i : i + 1])[0]) for i in range(len(ctx))]
        assert run.tolist() == one


def test_curves_change_the_roofline_where_tables_exist():
    m, g = catalog.model("llama-2-7b"), catalog.gpu("a100-80g")
    const = build_physical(RooflineCostConfig(efficiency="constant"), m, g, 1)
    curves = build_physical(RooflineCostConfig(), m, g, 1)
    assert const.iteration([(1024, 0)], 0, 0) != curves.iteration([(1024, 0)], 0, 0)
    # the curves' achieved rates are physical: never above the spec-sheet peak
    for op in ("attn_pre_proj", "mlp_up_proj", "mlp_down_proj"):
        for mm in (1, 64, 4096):
            peak = RooflineCost(RooflineCostConfig(compute_efficiency=1, memory_efficiency=1), m, g, 1)
            assert curves.operator(op, mm) >= peak.operator(op, mm)
