"""Fitted kernel-efficiency scales never lift a curve-priced operator past the GPU's spec peak.

The learned GEMM and element-wise curves price an operator as `roofline at the peaks × ratio(size)`; the
scales multiply the peaks. A scale above 1 may speed an operator only until it runs at the spec roofline (or
stays at its unscaled measurement where that already beat the spec arithmetic), per operator and size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwprofiles import catalog
from sim.costmodel.build import build_physical
from sim.costmodel.curves import capped
from sim.costmodel.engine import preset
from sim.costmodel.memo import memoised
from sim.costmodel.models import RooflineCost, RooflineCostConfig

GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj", "lm_head")
ELEMENTWISE = ("input_layernorm", "post_attention_layernorm", "add", "attn_rope", "mlp_act")
SIZES = [1, 3, 16, 100, 128, 255, 512, 1500, 2048, 4096, 9000, 32768]
TOP = {"compute_efficiency_scale": 1.5, "memory_efficiency_scale": 1.5, "attention_efficiency_scale": 1.5}


def _cost(gpu: str, **scales: float) -> RooflineCost:
    m, g = catalog.model("llama-3.1-8b"), catalog.gpu(gpu)
    return build_physical(RooflineCostConfig(), m, g, 1, engine=preset("vllm-v1", **scales))


def _spec(cost: RooflineCost, op: str, m: int) -> float:
    """The operator at the GPU's spec peaks (efficiency 1): the fastest the silicon can run it."""
    peak = RooflineCost(RooflineCostConfig(compute_efficiency=1, memory_efficiency=1), cost.model, cost.gpu, 1)
    return peak.operator(op, m)


def test_capped_leaves_a_time_at_or_above_the_spec_roofline_alone() -> None:
    assert capped(3.0, 2.0, 1.5) == 3.0
    assert capped(1.0, 2.0, 1.5) == 2.0  # a scale that would run 2x past the peak: held at the spec roofline
    assert capped(0.5, 2.0, 0.8) == 1.6  # measured faster than the spec arithmetic: held at the measurement


@pytest.mark.parametrize("gpu", ["a100-80g", "h100", "rtx-pro-6000"])
def test_scaled_curves_never_beat_the_spec_roofline_or_their_measurement(gpu: str) -> None:
    top, plain = _cost(gpu, **TOP), _cost(gpu)
    lifted = 0
    for op in GEMMS + ELEMENTWISE:
        for m in SIZES:
            bound = min(plain.operator(op, m), _spec(plain, op, m))
            got = top.operator(op, m)
            assert got >= bound * (1 - 1e-12), (op, m)
            assert got <= plain.operator(op, m)  # still a speed-up where there is room below the peak
            lifted += got < plain.operator(op, m) * (1 - 1e-9)
    assert lifted > len(SIZES)  # the scales do act: many operators get faster, only the excess is cut


def test_the_old_uncapped_scaling_ran_gemms_past_the_peak() -> None:
    # what the cap prevents: at scale 1.5 a memory-bound GEMM whose curve reaches 1/1.24 of the bandwidth
    # would stream its weights at 1.5 / 1.24 = 1.2x the spec bandwidth
    top = _cost("a100-80g", memory_efficiency_scale=1.5)
    k, n = top._w.gemm("mlp_up_proj")
    m = 16
    weights_s = k * n * top.a / top.gpu.mem_bw  # the weights alone, at the spec bandwidth
    uncapped = max(2.0 * m * k * n / top.peak_flops, (k * n + m * k + m * n) * top.a / top.peak_bw)
    uncapped *= top._ratio(m, top._gemm_curves["mlp_up_proj"])
    assert uncapped < weights_s  # uncapped: faster than the memory can deliver the weights
    assert top.operator("mlp_up_proj", m) >= weights_s


def test_scales_of_one_or_below_price_exactly_as_before() -> None:
    # no scale above 1: not a single float moves (the cap is skipped; byte identity of unscaled runs)
    for scales in ({}, {"compute_efficiency_scale": 0.8, "memory_efficiency_scale": 0.9}):
        cost = _cost("a100-80g", **scales)
        assert not cost._lifted
        k, n = cost._w.gemm("mlp_down_proj")
        for m in SIZES:
            roof = max(2.0 * m * k * n / cost.peak_flops, (k * n + m * k + m * n) * cost.a / cost.peak_bw)
            want = roof * cost._ratio(m, cost._gemm_curves["mlp_down_proj"])
            if cost._floors:
                want = max(want, cost._floors.get("mlp_down_proj", cost._floors.get("gemm", 0.0)))
            assert cost.operator("mlp_down_proj", m) == want


def test_memo_follows_the_capped_model_exactly() -> None:
    # the pricing memo mirrors RooflineCost through its operator methods: with capped scales it still agrees
    cost = _cost("rtx-pro-6000", **TOP)
    memo = memoised(cost)
    assert memo is not cost and not getattr(memo, "diverged", True)
    rng = np.random.default_rng(7)
    for _ in range(40):
        chunks = [(int(rng.integers(1, 2048)), int(rng.integers(0, 4000))) for _ in range(int(rng.integers(1, 4)))]
        n = int(rng.integers(0, 200))
        ctx = n * int(rng.integers(1, 3000))
        assert memo.iteration(chunks, n, ctx).hex() == cost.iteration(chunks, n, ctx).hex()
    assert not getattr(memo, "diverged", True)


def test_decode_step_under_top_scales_reads_weights_no_faster_than_the_bandwidth() -> None:
    # a decode step of batch 1 streams every weight once: at scales 1.5 it still takes at least weights / bw
    cost = _cost("rtx-pro-6000", **TOP)
    m = cost.model
    weights = m.num_layers * (
        m.hidden_size * (cost.hq + 2 * cost.hkv) + cost.hq * m.hidden_size + 3 * m.hidden_size * m.intermediate_size
    )
    step = float(cost.decode_run(1, np.array([100.0]))[0])
    assert step >= weights * m.dtype_bytes / cost.gpu.mem_bw
    assert math.isfinite(step)
