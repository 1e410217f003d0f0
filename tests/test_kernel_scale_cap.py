"""Fitted kernel-efficiency scales never lift a curve-priced operator past the GPU's spec peak.

The learned GEMM and element-wise curves price an operator as `roofline at the peaks × ratio(size)`; the
scales multiply the peaks. A scale above 1 may speed an operator only until it runs at the spec roofline (or
stays at its unscaled measurement where that already beat the spec arithmetic), per operator and size."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from hwprofiles import catalog
from sim.cluster.pools import build_cost_model
from sim.config.scenario import load_scenario
from sim.costmodel.build import build_physical
from sim.costmodel.curves import capped
from sim.costmodel.engine import preset
from sim.costmodel.memo import memoised
from sim.costmodel.models import RooflineCost, RooflineCostConfig
from sim.costmodel.profile import ProfileParams
from sim.costmodel.quant import Quantization
from sim.costmodel.structured import StructuredCost
from tests.test_costmodel_structured import EXACT, GPU, TOY_MOE

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


class _FlatCurves:
    """GEMM curves flat in M: ratio 1.25 for wide matrices (n >= 1000), 3 for narrow ones (toy, hand-computable)."""

    def gemm_curve(self, k: float, n: float, op: str | None = None) -> Any:
        return np.log(np.array([1.0, 1e6])), np.full(2, math.log(3.0 if n < 1000 else 1.25))

    def mem_curve(self, cls: str, width: float) -> Any:
        return None

    def attention_grid(self, phase: str) -> Any:
        return None


def _structured(quant: Quantization, curves: bool = True, scale: float = 1.5) -> StructuredCost:
    cfg = EXACT.model_copy(update={"efficiency": "curves"}) if curves else EXACT
    params = ProfileParams(compute_scale=scale, memory_scale=scale)
    eff = _FlatCurves() if curves else None
    return StructuredCost(cfg, TOY_MOE, GPU, 1, eff=eff, quant=quant, params=params)


def test_structured_gemms_stop_at_the_spec_roofline_of_their_own_precision() -> None:
    # toy GPU: bf16 1e12, fp8 2e12 FLOP/s, 1e9 B/s. Scales 1.5 on a 1.25x curve would run at 1.25 / 1.5 = 0.83x
    # the spec roofline: held at it, per precision (W8A8 at the FP8 peak, the bf16 LM head at the bf16 peak)
    fp8 = Quantization(weights="fp8", activations="fp8")
    k = n = 8192  # memory-bound up to M ~ 1000, compute-bound at M = 10^5 (even at the FP8 peak)
    for m in (1, 3, 4096, 10**5):
        flops = 2.0 * m * k * n
        bf16 = _structured(Quantization()).gemm("mlp_up_proj", m, k, n)
        assert bf16 == max(flops / 1e12, (k * n + m * k + m * n) * 2 / 1e9)
        q = _structured(fp8).gemm("mlp_up_proj", m, k, n)
        assert q == pytest.approx(max(flops / 2e12, (k * n + m * k + m * n) / 1e9), rel=1e-12)
        head = _structured(fp8).gemm("lm_head", m, k, n, unquantised=True)
        assert head == max(flops / 1e12, (k * n + m * k + m * n) * 2 / 1e9)
        # scales of 1: the curve's 1.25x of the spec roofline, unchanged
        assert _structured(fp8, scale=1.0).gemm("mlp_up_proj", m, k, n) == pytest.approx(q * 1.25, rel=1e-12)
    # a narrow matrix (3x curve) has room below the peak: the scales still speed it up, 3 / 1.5 = 2x the roofline
    m, n = 4096, 200
    roof = max(2.0 * m * k * n / 1e12, (k * n + m * k + m * n) * 2 / 1e9)
    assert _structured(Quantization()).gemm("mlp_up_proj", m, k, n) == pytest.approx(roof * 2.0, rel=1e-12)
    # no curve (constant efficiency 1): compute scale 1.5 stops at the precision's peak too
    m, n = 10**5, 8192
    assert 2.0 * m * k * n / 2e12 > (k * n + m * k + m * n) / 1e9
    assert _structured(fp8, curves=False).gemm("mlp_up_proj", m, k, n) == 2.0 * m * k * n / 2e12


def test_structured_moe_gemms_on_measured_curves_never_beat_the_spec_roofline() -> None:
    # the reviewer's case: Mixtral on H100 curves at compute and memory scale 1.5 priced its expert-sized
    # mlp_up_proj at 0.80-0.92x the spec roofline
    def cost(**scales: float) -> StructuredCost:
        sc = {
            "name": "cap",
            "model": "mixtral-8x7b",
            "hardware": "h100-sxm",
            "workload": {
                "arrival": {"kind": "poisson", "rate": 1},
                "num_requests": 1,
                "lengths": {"kind": "fixed", "prompt": 100, "output": 10},
            },
            "serving_engine": {"kind": "vllm-v1", **scales},
            "cost_model": {"kind": "roofline", "efficiency": "curves"},
        }
        c = build_cost_model(load_scenario(sc))
        c = getattr(c, "cost", c)
        assert isinstance(c, StructuredCost) and c.curves
        return c

    top, plain = cost(compute_efficiency_scale=1.5, memory_efficiency_scale=1.5), cost()
    k, n = top.h, 4 * top.h
    lifted = 0
    for m in SIZES:
        spec = max(2.0 * m * k * n / top.gpu.bf16_flops, (k * n + m * k + m * n) * 2 / top.gpu.mem_bw)
        got, before = top.gemm("mlp_up_proj", m, k, n), plain.gemm("mlp_up_proj", m, k, n)
        assert got >= min(before, spec) * (1 - 1e-12), m
        assert got <= before
        lifted += got < before * (1 - 1e-9)
    assert lifted > 0
