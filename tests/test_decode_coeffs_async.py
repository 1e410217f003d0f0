"""`sim.core.clock.step_times`, the fast-forward clock of a decode run, against the cost model's own `decode_run`:
its affine shortcut (`decode_coeffs`) may be offered only where a step is exactly a + b·context. Under vLLM V1's
async scheduling a step takes max(CPU, kernels) (`RooflineCost.decode_run`), which is not affine once the CPU
step outlasts the kernels; every cost class (the dense roofline and the structured one for MoE, MLA and
quantised models) must then fall back to `decode_run`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwprofiles import catalog
from sim.core.clock import step_times
from sim.costmodel.build import build_physical
from sim.costmodel.engine import preset
from sim.costmodel.layout import Layout
from sim.costmodel.models import RooflineCost, RooflineCostConfig
from sim.costmodel.quant import Quantization
from sim.costmodel.structured import StructuredCost

FP8 = Quantization(weights="fp8", activations="fp8")
# (model, GPU, tp, layout, quantisation): a dense bf16 model (RooflineCost), and MoE, MLA + FP8 + expert parallel,
# and FP8 dense deployments (StructuredCost)
DEPLOYMENTS: dict[str, tuple[str, str, int, Layout | None, Quantization | None]] = {
    "dense": ("llama-3.1-8b", "h100", 1, None, None),
    "moe": ("qwen3-30b-a3b", "h100", 1, None, None),
    "mla-fp8-ep": ("deepseek-v3", "h200", 8, Layout(tp=8, ep=8, moe_tp=1), FP8),
    "fp8-dense": ("llama-3.1-8b", "h100", 1, None, FP8),
}


def _cost(name: str, **engine: Any) -> RooflineCost:
    model, gpu, tp, layout, quant = DEPLOYMENTS[name]
    eng = preset("vllm-v1", launch_per_layer_s=0.0, **engine)
    kw = _kw(layout, quant)
    return build_physical(RooflineCostConfig(), catalog.model(model), catalog.gpu(gpu), tp, engine=eng, **kw)


def _kw(layout: Layout | None, quant: Quantization | None) -> dict[str, Any]:
    return {k: v for k, v in (("layout", layout), ("quant", quant)) if v is not None}


@pytest.mark.parametrize("name", list(DEPLOYMENTS))
def test_async_cpu_longer_than_the_kernels_sets_every_step(name: str) -> None:
    """CPU 0.2 s per step (far beyond any of these kernels): each step of the fast-forward clock is the CPU step,
    exactly what `decode_run` and the operator breakdown charge; the affine shortcut is not offered."""
    n, ctx0, k = 8, 8 * 500, 5
    cpu = 0.2 + n * 1e-5
    kernels = _cost(name, scheduler_s=0.0, sample_per_seq_s=0.0)  # the same kernels, nothing on the host
    slow = _cost(name, scheduler_s=0.2, sample_per_seq_s=1e-5)
    assert isinstance(slow, StructuredCost) is (name != "dense")
    ctx = ctx0 + n * np.arange(1, k + 1)
    assert (kernels.decode_run(n, ctx) < cpu).all()  # the case under test: the host sets the pace
    assert slow.decode_coeffs(n) is None
    times, _ = step_times(slow, 0.0, n, ctx0, k)
    assert np.diff([0.0, *times]) == pytest.approx(np.full(k, cpu), rel=1e-12)
    assert sum(slow.breakdown([], n, int(ctx[0])).values()) == pytest.approx(cpu, rel=1e-12)


@pytest.mark.parametrize("name", list(DEPLOYMENTS))
def test_async_cpu_inside_the_kernels_keeps_the_affine_run(name: str) -> None:
    """CPU 1 µs per step, hidden at every context: the shortcut is offered and gives the kernels' own steps."""
    n, ctx0, k = 8, 8 * 500, 5
    kernels = _cost(name, scheduler_s=0.0, sample_per_seq_s=0.0)
    quick = _cost(name, scheduler_s=1e-6, sample_per_seq_s=0.0)
    assert quick.decode_coeffs(n) is not None  # none of these has a window, linear layers or a measured decode curve
    times, _ = step_times(quick, 0.0, n, ctx0, k)
    want = np.cumsum(kernels.decode_run(n, ctx0 + n * np.arange(1, k + 1)))
    assert times == pytest.approx(want, rel=1e-12)


def test_cpu_between_short_and_long_context_kernels() -> None:
    """A CPU step longer than the kernels at the run's start and shorter at its end (MoE on the structured
    model): each step is max(CPU, kernels), by hand from the kernels-only model."""
    n, ctx0, k = 4, 0, 40
    kernels = _cost("moe", scheduler_s=0.0, sample_per_seq_s=0.0)
    ctx = ctx0 + n * np.arange(1, k + 1) * 4000
    kern = kernels.decode_run(n, ctx.astype(np.float64))
    cpu = float(kern[0] + kern[-1]) / 2
    mid = _cost("moe", scheduler_s=cpu, sample_per_seq_s=0.0)
    assert mid.decode_coeffs(n) is None
    assert mid.decode_run(n, ctx.astype(np.float64)) == pytest.approx(np.maximum(cpu, kern), rel=1e-12)
