"""Routed experts as one grouped launch (`serving_engine.moe_grouped_gemm`), checked against vLLM's own fused_moe
timings (benchmarks/moe_vllm_kernel_check.py, vllm-project/vllm PR #24700, H100; a check, nothing fitted): every
preset prices `per_expert`; `fused_moe` (one launch plus the call's activation-quantisation launches at the GPU's
element-wise floor) is derived from vLLM's source and the measured floors and misses the published kernel at 1-16
tokens by more than the band; the engine prices the reading the scenario picks, vLLM's kernel lies between the two plain
readings, and the check prices what the cost model prices."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import moe_vllm_kernel_check as chk

from sim.cluster.pools import pool_specs
from sim.config.scenario import load_scenario
from sim.costmodel import moe
from sim.costmodel.engine import ServingEngineConfig


def test_presets() -> None:
    """No preset prices one launch (on the vLLM rows it overshoots out of sample, s10-vllm) or fused_moe (its derived
    part misses PR #24700, COVERAGE.md s12-tpot2): every preset keeps per_expert, as main had before s12-tpot."""
    for kind in ("vllm-v1", "vllm-v0", "sglang", "trtllm"):
        assert ServingEngineConfig(kind=kind).moe_grouped_gemm == "per_expert"
    for grouped in ("one_launch", "fused_moe"):
        assert ServingEngineConfig(kind="vllm-v1", moe_grouped_gemm=grouped).moe_grouped_gemm == grouped


def test_fused_moe_fixed_part_by_hand() -> None:
    """vLLM's fused_experts launches two moe_kernel_quantize_input kernels that nothing else prices, only when
    activations are quantised: 2 x the GPU's `mlp_act` launch floor (H100 1 us, A100 2 us in the measured tables),
    per MoE layer per step at any batch; bf16 activations and the other readings add nothing."""
    assert moe.FUSED_MOE_QUANT_LAUNCHES == 2
    assert moe.fixed_part("fused_moe", {"mlp_act": 1e-6, "add": 5e-6}, True) == pytest.approx(2e-6, rel=1e-12)
    assert moe.fixed_part("fused_moe", {"mlp_act": 1e-6}, False) == 0.0
    assert moe.fixed_part("one_launch", {"mlp_act": 1e-6}, True) == moe.fixed_part("per_expert", {}, True) == 0.0
    h100 = chk.cost_model("qwen3-30b-a3b", "fp8", 1)
    assert h100._kfloor["mlp_act"] == pytest.approx(1e-6, rel=1e-9)  # the Vidur H100 table's fastest activation
    a100 = _cost("vllm-v1", "fused_moe", "a100-80g", "bf16")  # no FP8 tensor cores: activations stay bf16
    assert a100._kfloor["mlp_act"] == pytest.approx(2e-6, rel=1e-9)
    for hw, prec, want in (("h100-sxm", "fp8", 2e-6), ("h100-sxm", "bf16", 0.0), ("a100-80g", "bf16", 0.0)):
        fused, one = _cost("vllm-v1", "fused_moe", hw, prec), _cost("vllm-v1", "one_launch", hw, prec)
        for tokens in (1, 4, 64, 512):
            gap = fused._mlp(tokens, tokens)["moe_experts"] - one._mlp(tokens, tokens)["moe_experts"]
            assert gap == pytest.approx(fused.model.num_moe_layers * want, rel=1e-9, abs=1e-15)


def test_fused_moe_against_the_published_timings() -> None:
    """All 24 published timings are a check (none enters a price). The derived reading is within -10..0 % on Mixtral
    BF16 (no quantisation launches: one_launch) and -17..-12 % on Qwen3 FP8 at 16-256 tokens, but -41..-24 % at 1-8
    tokens: 2 us against an 18-46 us gap, outside any honest band, hence no preset uses it. per_expert misses by up
    to +83 %."""
    rows = chk.table()
    assert len(rows) == 24
    mixtral = [r for r in rows if r["case"].startswith("Mixtral")]
    assert all(-0.11 < r["fused_moe_err"] <= 0.0 and r["fused_moe_us"] == r["one_launch_us"] for r in mixtral)
    qwen = {r["tokens"]: r for r in rows if r["case"].startswith("Qwen3")}
    assert all(-0.18 < qwen[t]["fused_moe_err"] < -0.11 for t in qwen if t >= 16)
    assert all(-0.42 < qwen[t]["fused_moe_err"] < -0.23 for t in qwen if t <= 8)
    assert all(r["fused_moe_us"] - r["one_launch_us"] == pytest.approx(2.0, abs=1e-6) for r in qwen.values())
    assert max(abs(r["per_expert_err"]) for r in rows) > 0.8


def _cost(kind: str, grouped: str | None = None, hardware: str = "h100-sxm", precision: str = "fp8") -> Any:
    sc = {**chk.mk.SCENARIO, "model": "qwen3-30b-a3b", "hardware": hardware, "cluster": {"tp": 1}}
    sc["quantization"] = {"weights": precision, "activations": precision}
    sc["serving_engine"] = {"kind": kind, **({"moe_grouped_gemm": grouped} if grouped else {})}
    return pool_specs(load_scenario(sc))[0].cost


@pytest.mark.parametrize(
    "kind,grouped,group,fixed",
    [
        ("vllm-v1", "one_launch", True, 0.0),
        ("vllm-v1", "fused_moe", True, 2e-6),
        ("vllm-v1", None, False, 0.0),
        ("vllm-v1", "per_expert", False, 0.0),
        ("sglang", "one_launch", True, 0.0),
        ("trtllm", None, False, 0.0),
    ],
)
def test_the_engine_picks_the_reading(kind: str, grouped: str | None, group: bool, fixed: float) -> None:
    cost = _cost(kind, grouped)
    mod, h = cost.model, cost.h
    for tokens in (4, 64):
        active = moe.busiest_active_experts(tokens, mod.experts_per_token, mod.num_experts, 1)
        pairs, w = tokens * mod.experts_per_token, mod.expert_width
        want = cost.gemm("router", tokens, h, mod.num_experts, unquantised=True)
        want += cost.gemm("moe_up", pairs, h, 2 * w, active, group=group)
        want += cost.gemm("moe_down", pairs, w, h, active, group=group) + fixed
        assert cost._mlp(tokens, tokens)["moe_experts"] == pytest.approx(mod.num_moe_layers * want, rel=1e-12)


def test_group_reading_reads_the_group_width_curve() -> None:
    cost = _cost("vllm-v1")
    # one matrix: the two readings are the same GEMM
    assert cost.gemm("moe_up", 4, 2048, 1536, 1.0, group=True) == cost.gemm("moe_up", 4, 2048, 1536, 1.0)
    # 100 experts, 2 tokens each: the same bytes, streamed by one launch, take less than 100 small GEMMs do,
    # and no less than the bytes at the GPU's spec bandwidth
    one, per = (cost.gemm("moe_up", 200, 2048, 1536, 100.0, group=g) for g in (True, False))
    assert one < 0.8 * per
    assert one >= 100 * 2048 * 1536 * 1.0 / cost.gpu.mem_bw


def test_vllm_kernel_lies_between_the_readings() -> None:
    """The check's table: at 16-256 tokens of a many-small-experts model per_expert is 64-83 % above vLLM's
    measured fused_moe and one_launch 13-18 % below; on Mixtral's 8 large experts both are close, one_launch
    closer. Fails if either reading's pricing moves (the check prices what the cost model prices)."""
    rows = chk.table()
    qwen = [r for r in rows if r["case"].startswith("Qwen3") and 16 <= r["tokens"] <= 256]
    assert len(qwen) == 8
    assert all(-0.25 < r["one_launch_err"] < 0.0 for r in qwen)
    assert all(r["per_expert_err"] > 0.6 for r in qwen)
    mixtral = [r for r in rows if r["case"].startswith("Mixtral") and r["tokens"] >= 8]
    assert all(abs(r["one_launch_err"]) < 0.08 for r in mixtral)
    assert all(r["per_expert_err"] > 0.09 for r in mixtral)
    # the check prices the vllm-v1 cost model's MoE layer less the router, in its own reading when not `wide`
    cost = chk.cost_model("qwen3-30b-a3b", "fp8", 1)
    routed = cost._mlp(64, 64)["moe_experts"] / cost.n_moe
    router = cost.gemm("router", 64, cost.h, 128, unquantised=True)
    assert chk.fused_experts_s(cost, 64, False) > routed - router


@pytest.mark.parametrize("cost_kind", ["roofline", "table"])
def test_every_moe_scenario_reads_the_option(cost_kind: str) -> None:
    """StructuredCost is the option's only reader (README): every MoE scenario of the physical kinds builds one, so
    the option is never silently dropped for a scenario."""
    got = []
    for grouped in ("per_expert", "one_launch"):
        sc = {**chk.mk.SCENARIO, "model": "qwen3-30b-a3b", "hardware": "h100-sxm", "cluster": {"tp": 1}}
        sc["quantization"] = {"weights": "bf16", "activations": "bf16"}
        sc["cost_model"] = {**(sc.get("cost_model") or {}), "kind": cost_kind}
        sc["serving_engine"] = {"kind": "vllm-v1", "moe_grouped_gemm": grouped}
        cost = pool_specs(load_scenario(sc))[0].cost
        assert isinstance(cost, chk.StructuredCost)
        got.append(cost._mlp(64, 64)["moe_experts"])
    assert got[1] < 0.8 * got[0]  # 64 tokens on ~60 of 128 small experts: the readings differ by ~2x (COVERAGE)
