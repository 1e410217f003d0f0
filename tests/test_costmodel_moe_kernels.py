"""MoE and quantised-deployment kernels in the structured cost model, by hand: grouped expert GEMMs priced at
the group's width, the LM head and router kept in bf16, memory-bound kernels with their launch floors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sim.costmodel.layout import Layout
from sim.costmodel.quant import Quantization
from sim.costmodel.structured import StructuredCost
from tests.test_costmodel_structured import EXACT, GPU, TOY_MOE

FP8 = Quantization(weights="fp8", activations="fp8")


class WidthCurves:
    """Efficiency curves whose ratio depends only on the GEMM's width n: 3x below n = 1000 (a small matrix
    that cannot fill the GPU), 1.25x from there (a wide one); flat in M. Records every lookup."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []

    def gemm_curve(self, k: float, n: float, op: str | None = None) -> Any:
        self.asked.append((k, n))
        r = 3.0 if n < 1000 else 1.25
        return np.log(np.array([1.0, 1e6])), np.full(2, math.log(r))

    def mem_curve(self, cls: str, width: float) -> Any:
        return None

    def attention_grid(self, phase: str) -> Any:
        return None


def _curved(quant: Quantization | None = None) -> tuple[StructuredCost, WidthCurves]:
    curves = WidthCurves()
    cfg = EXACT.model_copy(update={"efficiency": "curves"})
    cost = StructuredCost(cfg, TOY_MOE, GPU, 1, eff=curves, quant=quant or Quantization())
    return cost, curves


def test_grouped_expert_gemm_reads_one_experts_curve_by_default() -> None:
    cost, curves = _curved()
    t = cost.gemm("moe_up", 20, 64, 200, 10.0)
    assert curves.asked[-1] == (64.0, 200.0)
    roof = max(2 * 20 * 64 * 200 / 1e12, (64 * 200 * 10 * 2 + (20 * 64 + 20 * 200) * 2) / 1e9)
    assert t == pytest.approx(roof * 3.0, rel=1e-12)  # each expert's small matrix: 3x


def test_lm_head_and_router_stay_bf16_in_a_quantised_deployment() -> None:
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 1, quant=FP8)
    # LM head of 3 sequences: 64 x 100 bf16 weights, bf16 activations, bf16 peak (1e12), not fp8's 1 byte / 2e12
    lm = max(2 * 3 * 64 * 100 / 1e12, (64 * 100 * 2 + (3 * 64 + 3 * 100) * 2) / 1e9)
    assert cost._lm_head(3) == pytest.approx(lm, rel=1e-12)
    # router of 4 tokens over 8 experts in bf16; routed experts in fp8 (1-byte weights and inputs)
    ops = cost._mlp(4, 4)
    active = 8 * (1 - 0.75**4)
    router = max(2 * 4 * 64 * 8 / 1e12, (64 * 8 + 4 * 64 + 4 * 8) * 2 / 1e9)
    up = max(2 * 8 * 64 * 64 / 2e12, (64 * 64 * active + 8 * 64 + 8 * 64) * 1 / 1e9)
    down = max(2 * 8 * 32 * 64 / 2e12, (32 * 64 * active + 8 * 32 + 8 * 64) * 1 / 1e9)
    assert ops["moe_experts"] == pytest.approx(router + up + down, rel=1e-12)


FLOORS = {
    "input_layernorm": 4e-6,
    "post_attention_layernorm": 3e-6,
    "attn_rope": 2e-6,
    "attn_kv_cache_save": 1e-6,
    "mlp_act": 1e-6,
    "add": 1.5e-6,
    "gemm": 0.0,
}


def test_memory_bound_kernels_pay_their_launch_floors() -> None:
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 1, floors=FLOORS)
    # one MoE layer, 1 token: every kernel is far below its floor (bytes / 1e9 B/s are nanoseconds), so the
    # step's memory-bound kernels cost their floors: two norms, RoPE, KV write, router top-k, permutation,
    # routed activation, combine, shared-expert activation
    expected = 4e-6 + 3e-6 + 2e-6 + 1e-6 + 1e-6 + 1.5e-6 + 1e-6 + 1.5e-6 + 1e-6
    assert cost._dense(1)["elementwise"] == pytest.approx(expected, rel=1e-12)
    # without measured floors (constant efficiency), the bytes alone, in bf16 at 1e9 B/s: each norm reads x and
    # the residual, writes both and reads its weight (4 x 64 per token + 64), and per token RoPE 2 x (64 + 64),
    # KV write 2 x 128, top-k 2 x 8, permutation 2 x 2 pairs, combine 64 x (2 + 1), routed activation
    # 3 x 32 x 2 pairs, shared activation 3 x 32 elements, 2 bytes each
    plain = StructuredCost(EXACT, TOY_MOE, GPU, 1)
    for m in (1, 100_000):  # large batches are bandwidth-bound: floors no longer matter
        elems = 2 * (4 * 64 * m + 64) + m * (2 * 128 + 2 * 128 + 2 * 8 + 2 * 2 + 64 * 3 + 3 * 32 * 2 + 3 * 32)
        assert plain._dense(m)["elementwise"] == pytest.approx(elems * 2 / 1e9, rel=1e-12)
    assert cost._dense(100_000)["elementwise"] == pytest.approx(plain._dense(100_000)["elementwise"], rel=1e-12)


def test_elementwise_is_bf16_even_when_gemm_inputs_are_fp8() -> None:
    a = StructuredCost(EXACT, TOY_MOE, GPU, 1)._dense(50_000)["elementwise"]
    b = StructuredCost(EXACT, TOY_MOE, GPU, 1, quant=FP8)._dense(50_000)["elementwise"]
    assert a == pytest.approx(b, rel=1e-12)


def test_expert_parallel_layout_keeps_its_kernels_per_rank() -> None:
    lay = Layout(tp=1, attention_dp=4, ep=4, moe_tp=1)
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 1, layout=lay, floors=FLOORS)
    one = StructuredCost(EXACT, TOY_MOE, GPU, 1, floors=FLOORS)
    # at one token per rank every kernel sits on its floor: the same kernels, the same time
    assert cost._dense(4)["elementwise"] == pytest.approx(one._dense(1)["elementwise"], rel=1e-12)


class StepCurves(WidthCurves):
    """Ratio 2 up to M = 100 tokens, 1 from M = 101 (any shape): where a GEMM is read shows in its ratio."""

    def gemm_curve(self, k: float, n: float, op: str | None = None) -> Any:
        return np.log(np.array([1.0, 100.0, 101.0, 1e6])), np.log(np.array([2.0, 2.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("quant", "shift"),
    [
        (Quantization(), 1.0),  # bf16: the curves' own precision
        (FP8, 1.0),  # 1-byte weights on cores twice as fast: the crossover stays at the same M
        (Quantization(weights="int4"), 2 / (4.5 / 8)),  # int4 weight-only on bf16 cores: 3.56 x M
        (Quantization(weights="fp4", activations="fp8"), (2 / (4.5 / 8)) * (1e12 / 2e12)),  # W4A8: 1.78 x M
    ],
)
def test_quantised_gemm_reads_the_curve_at_its_ridge_position(quant: Quantization, shift: float) -> None:
    cfg = EXACT.model_copy(update={"efficiency": "curves"})
    cost = StructuredCost(cfg, TOY_MOE, GPU, 1, eff=StepCurves(), quant=quant)
    assert cost._ridge_m == pytest.approx(shift, rel=1e-12)
    m = 50  # read at 50 x shift: past the step (ratio 1) only when the shift exceeds 2.02
    peak = GPU.peak_flops(quant.activations) or GPU.bf16_flops
    wa, aa = quant.weight_bits / 8, quant.act_bytes
    roof = max(2 * m * 64 * 64 / peak, (64 * 64 * wa + (m * 64 + m * 64) * aa) / 1e9)
    ratio = 1.0 if m * shift > 101 else 2.0
    assert cost.gemm("x", m, 64, 64) == pytest.approx(roof * ratio, rel=1e-12)
    # the LM head is unquantised: always read at its own M
    lm_roof = max(2 * m * 64 * 100 / 1e12, (64 * 100 * 2 + (m * 64 + m * 100) * 2) / 1e9)
    assert cost._lm_head(m) == pytest.approx(lm_roof * 2.0, rel=1e-12)


def test_expert_parallel_without_attention_dp_all_reduces_instead_of_all_to_all() -> None:
    # tp 4 attention, experts split 4 ways by EP: every GPU holds all 8 tokens after attention's all-reduce, so
    # each computes its experts' share of them and one all-reduce per MoE layer sums the partial outputs
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 4, layout=Layout(tp=4, ep=4, moe_tp=1))
    ops = cost._dense(8)
    assert ops["moe_comm"] == 0.0
    assert ops["allreduce"] == pytest.approx(2 * cost._allreduce(8), rel=1e-12)  # after attention, after MoE
    # with attention DP the ranks' tokens differ: they travel all-to-all, and no MoE all-reduce is charged
    dp = StructuredCost(EXACT, TOY_MOE, GPU, 1, layout=Layout(tp=1, attention_dp=4, ep=4, moe_tp=1))
    assert dp._dense(8)["moe_comm"] > 0.0 and dp._dense(8)["allreduce"] == 0.0


TOY_GDN = TOY_MOE.model_copy(
    update={
        "num_layers": 2,
        "attention_pattern": "GF",  # one Gated DeltaNet layer, then full attention
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
        "linear_head_dim": 16,
    }
)


def test_gated_deltanet_layers_pay_their_conv_gating_and_norm_kernels() -> None:
    lin = StructuredCost(EXACT, TOY_GDN, GPU, 1, floors=FLOORS)
    full = StructuredCost(EXACT, TOY_GDN.model_copy(update={"attention_pattern": "F"}), GPU, 1, floors=FLOORS)
    # at one token each kernel sits on its floor: the conv (RoPE's 2 us), the gating (activation's 1 us), the gated
    # RMSNorm (4 us); the linear layer has no RoPE or KV write of its own (2 + 1 us on the full layer)
    step = lin._dense(1)["elementwise"] - full._dense(1)["elementwise"]
    assert step == pytest.approx(2e-6 + 1e-6 + 4e-6 - (2e-6 + 1e-6), rel=1e-12)
    # far above the floors, bytes: conv reads and writes (2 x 2 + 4) x 16 = 128 channels, the gating 2 x 4 values,
    # the norm reads the output and its gate and writes 4 x 16 elements; 2 bytes each at 1e9 B/s
    plain_lin = StructuredCost(EXACT, TOY_GDN, GPU, 1)
    plain_full = StructuredCost(EXACT, TOY_GDN.model_copy(update={"attention_pattern": "F"}), GPU, 1)
    m = 100_000
    kernels = m * (2 * 128 + 2 * 8 + 3 * 64) * 2 / 1e9
    rope_kv = m * (2 * (64 + 64) + 2 * 128) * 2 / 1e9  # the full layer's RoPE and KV write the linear one lacks
    diff = plain_lin._dense(m)["elementwise"] - plain_full._dense(m)["elementwise"]
    assert diff == pytest.approx(kernels - rope_kv, rel=1e-9)
