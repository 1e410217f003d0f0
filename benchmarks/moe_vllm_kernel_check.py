"""servesim's routed-MoE pricing against vLLM's own fused_moe kernel timings (a check, nothing is fitted).

    python benchmarks/moe_vllm_kernel_check.py [--json out.json]

vllm-project/vllm PR #24700 ("[Perf] Improve default fused moe configs by analyzing tuned configs", mgoin,
2025-09-11, "Benchmarks on H100") prints `benchmarks/kernels/benchmark_moe.py` kernel times: the whole
`fused_experts` call of one MoE layer (token alignment `moe_align_block_size`, the gate-up GEMM, the activation,
the down GEMM, the weighted sum) for given routing, router GEMM excluded, at 1-4096 tokens:
- Qwen/Qwen3-30B-A3B, `-tp=1 --dtype=fp8_w8a8` (128 experts, top-8, hidden 2048, expert width 768), the PR's
  own column ("# PR"), and
- mistralai/Mixtral-8x7B-Instruct-v0.1, `-tp=2`, BF16 (8 experts, top-2, hidden 4096, width 14336 / 2), "Tuned
  Config" (the shipped E=8,N=7168 H100 file).
servesim prices the same call as `StructuredCost` does a MoE layer (grouped FC1 / FC2 over the active experts and
the layer's memory-bound kernels; `moe_kernel_check.module_s` less the router GEMM) in its two readings of a
grouped GEMM (`per_expert`, `one_launch`: the note above `StructuredCost`), and in the `fused_moe` option
(`one_launch` plus `moe.fixed_part`: the call's activation-quantisation launches at the GPU's element-wise launch
floor, derived from vLLM's source and the measured floors, no published time). The table says where vLLM's kernel lies
between the readings; none of its 24 numbers is used in a price.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moe_kernel_check as mk

from sim.cluster.pools import pool_specs
from sim.config.scenario import load_scenario
from sim.costmodel import moe
from sim.costmodel.structured import StructuredCost

# tokens -> microseconds, as printed in PR #24700
QWEN3_30B_FP8_H100_US: dict[int, float] = {
    1: 40.44, 2: 56.15, 4: 78.10, 8: 118.64, 16: 164.64, 24: 193.48, 32: 210.07, 48: 230.59, 64: 237.26,
    96: 244.33, 128: 247.67, 256: 262.38,
}  # fmt: skip
MIXTRAL_BF16_TP2_H100_US: dict[int, float] = {
    1: 144.03, 2: 229.28, 4: 351.10, 8: 434.98, 16: 471.49, 24: 478.27, 32: 487.35, 48: 487.85, 64: 483.14,
    96: 494.42, 128: 491.39, 256: 536.77,
}  # fmt: skip
CASES: dict[str, tuple[str, str, int, dict[int, float]]] = {
    "Qwen3-30B-A3B FP8, H100, tp 1": ("qwen3-30b-a3b", "fp8", 1, QWEN3_30B_FP8_H100_US),
    "Mixtral-8x7B BF16, H100, tp 2": ("mixtral-8x7b", "bf16", 2, MIXTRAL_BF16_TP2_H100_US),
}


def cost_model(model: str, precision: str, tp: int) -> StructuredCost:
    sc: dict[str, Any] = {
        **mk.SCENARIO,
        "model": model,
        "hardware": "h100-sxm",
        "quantization": {"weights": precision, "activations": precision},
        "cluster": {"tp": tp},
        "serving_engine": {"kind": "vllm-v1"},
    }
    cost = pool_specs(load_scenario(sc))[0].cost
    assert isinstance(cost, StructuredCost)
    return cost


def fused_experts_s(cost: StructuredCost, tokens: int, one_launch: bool) -> float:
    """Seconds servesim gives vLLM's `fused_experts` call of `tokens` tokens (the MoE module less the router)."""
    router = cost.gemm("router", tokens, cost.h, cost.model.num_experts, unquantised=True)
    return mk.module_s(cost, tokens, wide=one_launch) - router


def table() -> list[dict[str, Any]]:
    rows = []
    for name, (model, precision, tp, published) in CASES.items():
        cost = cost_model(model, precision, tp)
        for tokens, us in published.items():
            per, one = (fused_experts_s(cost, tokens, w) * 1e6 for w in (False, True))
            fused = one + moe.fixed_part("fused_moe", cost._kfloor, cost.aa < 2.0) * 1e6  # the `fused_moe` reading
            rows.append(
                {
                    "case": name,
                    "tokens": tokens,
                    "vllm_us": us,
                    "per_expert_us": per,
                    "one_launch_us": one,
                    "per_expert_err": per / us - 1,
                    "one_launch_err": one / us - 1,
                    "fused_moe_us": fused,
                    "fused_moe_err": fused / us - 1,
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None, help="write the table here")
    args = ap.parse_args()
    rows = table()
    print("| case | tokens | vLLM fused_moe | per_expert | error | one_launch | error | fused_moe | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['tokens']} | {r['vllm_us']:.1f} | {r['per_expert_us']:.1f} | "
            f"{r['per_expert_err']:+.0%} | {r['one_launch_us']:.1f} | {r['one_launch_err']:+.0%} | "
            f"{r['fused_moe_us']:.1f} | {r['fused_moe_err']:+.0%} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"source": "vllm-project/vllm PR #24700", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
