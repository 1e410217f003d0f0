"""Routed experts as one grouped launch (`serving_engine.moe_grouped_gemm`), checked against vLLM's own fused_moe
timings (benchmarks/moe_vllm_kernel_check.py, vllm-project/vllm PR #24700, H100): vLLM V1 prices `fused_moe` (one
launch plus the call's fixed part), the others `per_expert`; the engine prices the reading the scenario picks, vLLM's
kernel lies between the two plain readings and within -12..+5 % of `fused_moe`, and the check prices what the cost
model prices."""

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
    """vLLM V1 prices its fused_moe (one launch + fixed part, COVERAGE.md s12-tpot); no preset prices one launch
    alone (on the vLLM rows it overshoots out of sample, s10-vllm); the others keep per_expert."""
    assert ServingEngineConfig(kind="vllm-v1").moe_grouped_gemm == "fused_moe"
    for kind in ("vllm-v0", "sglang", "trtllm"):
        assert ServingEngineConfig(kind=kind).moe_grouped_gemm == "per_expert"
    assert ServingEngineConfig(kind="vllm-v1", moe_grouped_gemm="one_launch").moe_grouped_gemm == "one_launch"


def test_fused_moe_fixed_part_by_hand() -> None:
    """PR #24700's 1-token fused_experts time (40.44 us) less servesim's one-launch module at 1 token (21.99 us):
    the fixed part; fused_moe adds exactly it per MoE layer to one_launch, per step, at any batch."""
    assert abs(moe.FUSED_MOE_FIXED_S - 18.45e-6) < 1e-15
    assert moe.fixed_part("fused_moe") == moe.FUSED_MOE_FIXED_S
    assert moe.fixed_part("one_launch") == moe.fixed_part("per_expert") == 0.0
    fused, one = _cost("vllm-v1"), _cost("vllm-v1", "one_launch")
    for tokens in (1, 4, 64, 512):
        gap = fused._mlp(tokens, tokens)["moe_experts"] - one._mlp(tokens, tokens)["moe_experts"]
        assert gap == pytest.approx(fused.model.num_moe_layers * 18.45e-6, rel=1e-9)
    # the 1-token row of the check is the constant's own source: one_launch there is what the constant subtracts
    first = next(r for r in chk.table() if r["tokens"] == 1 and r["case"].startswith("Qwen3"))
    assert first["one_launch_us"] == pytest.approx(21.99, abs=0.01)


def test_fused_moe_matches_the_other_kernel_timings() -> None:
    """The other 23 published timings (11 Qwen3 token counts, Mixtral-8x7B BF16 tp 2 at all 12, never used in a
    price) within -12..+5 %; per_expert misses them by up to +83 %, one_launch by up to -46 %."""
    rows = [r for r in chk.table() if not (r["tokens"] == 1 and r["case"].startswith("Qwen3"))]
    assert len(rows) == 23
    assert all(-0.12 < r["fused_moe_err"] < 0.05 for r in rows)
    assert max(abs(r["per_expert_err"]) for r in rows) > 0.8
    assert min(r["one_launch_err"] for r in rows) < -0.4


def _cost(kind: str, grouped: str | None = None) -> Any:
    sc = {**chk.mk.SCENARIO, "model": "qwen3-30b-a3b", "hardware": "h100-sxm", "cluster": {"tp": 1}}
    sc["quantization"] = {"weights": "fp8", "activations": "fp8"}
    sc["serving_engine"] = {"kind": kind, **({"moe_grouped_gemm": grouped} if grouped else {})}
    return pool_specs(load_scenario(sc))[0].cost


@pytest.mark.parametrize(
    "kind,grouped,group,fixed",
    [
        ("vllm-v1", "one_launch", True, 0.0),
        ("vllm-v1", None, True, moe.FUSED_MOE_FIXED_S),
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
