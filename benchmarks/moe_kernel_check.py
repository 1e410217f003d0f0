"""servesim's routed-MoE pricing against a published per-kernel measurement (a check, nothing is fitted).

    python benchmarks/moe_kernel_check.py [--json out.json]

TensorRT-LLM tech blog 24 ("MoE as Dense GEMM", docs/source/blogs/tech_blog/blog24_MoE_as_Dense_GEMM.md
@2226a865, table "Per-Rank MoE Module Latency") measured one B200's share of a TP-8 DeepSeek-V3 NVFP4 routed-MoE
module (hidden 7168, 256 experts, top-8, per-rank expert width 2048 / 8: router GEMM, top-k, quantisation, FC1,
FC2; the flanking all-reduces excluded) at 1-384 tokens, for two of TensorRT-LLM's MoE backends: TRTLLM-Gen
(`moe_config.backend: TRTLLM`) and CUTLASS (`backend: CUTLASS`). InferenceX's DeepSeek-R1 FP4 B200 TensorRT-LLM
recipes pick TRTLLM without attention DP and CUTLASS with it (`dsr1_fp4_b200_trt.sh`, since ec90f3fe7 2025-09-18).

servesim prices the same module as the router GEMM, the grouped FC1 / FC2 over the rank's active experts and
the MoE layer's memory-bound kernels (top-k, permutation, combine, activation) of `StructuredCost`. Two readings
of a grouped expert GEMM's efficiency: `per-expert` (servesim's: the measured curve of one expert's (k, n)
matrix at its tokens) and `group-width` (the curve of the (k, n x experts) GEMM, one launch filling the GPU as a
dense GEMM of the group's width). The table says which measured kernel each reading is closer to.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sim.cluster.pools import pool_specs
from sim.config.scenario import load_scenario
from sim.costmodel import moe
from sim.costmodel.structured import StructuredCost

# blog 24, "Per-Rank MoE Module Latency" (TRTLLM_MOE_FUSED_FC2_ALPHA=1): tokens -> (TRTLLM-Gen us, CUTLASS us)
BLOG24_US: dict[int, tuple[float, float]] = {
    1: (26.78, 96.77),
    8: (57.68, 150.55),
    16: (86.55, 200.05),
    32: (117.20, 262.73),
    48: (133.54, 290.50),
    64: (141.68, 308.44),
    128: (161.87, 335.65),
    192: (168.23, 350.68),
    208: (169.34, 354.73),
    224: (169.24, 354.01),
    256: (172.17, 351.98),
    272: (176.10, 357.90),
    336: (184.32, 363.58),
    384: (186.92, 368.12),
}

SCENARIO: dict[str, Any] = {
    "name": "blog24-moe",
    "model": "deepseek-v3",
    "hardware": "b200",
    "quantization": {"weights": "fp4", "activations": "fp4", "kv_cache": "fp8"},
    "cluster": {"tp": 8},
    "serving_engine": {"kind": "trtllm"},
    "workload": {
        "arrival": {"kind": "poisson", "rate": 1.0},
        "num_requests": 1,
        "lengths": {"kind": "fixed", "prompt": 128, "output": 8},
    },
}


def cost_model() -> StructuredCost:
    cost = pool_specs(load_scenario(SCENARIO))[0].cost
    assert isinstance(cost, StructuredCost)
    return cost


def _gemm(cost: StructuredCost, op: str, m: float, k: float, n: float, copies: float, wide: bool) -> float:
    """`cost.gemm`, with the group-width reading when `wide` (the curve of the (k, n x copies) GEMM)."""
    return cost.gemm(op, m, k, n, copies, group=wide)


def module_s(cost: StructuredCost, tokens: int, wide: bool = False) -> float:
    """Seconds servesim gives one rank's routed-MoE module of `tokens` tokens (TP: every rank sees every token)."""
    mod, h = cost.model, cost.h
    k, e, width = mod.experts_per_token, mod.num_experts, mod.expert_width / cost.layout.moe_tp_size
    pairs = tokens * k
    active = moe.busiest_active_experts(tokens, k, e, 1, mod.n_group, mod.topk_group)
    router = cost.gemm("router", tokens, h, e, unquantised=True)
    up = _gemm(cost, "moe_up", pairs, h, 2 * width, active, wide)
    down = _gemm(cost, "moe_down", pairs, width, h, active, wide)

    def kern(elems: float, op: str) -> float:  # as StructuredCost._elementwise prices the MoE layer's kernels
        return max(elems * cost.a / cost.bw, cost._kfloor.get(op, 0.0))

    small = kern(2.0 * e * tokens, "mlp_act") + kern(2.0 * pairs, "add") + kern(h * (pairs + tokens), "add")
    return router + up + down + small + kern(3.0 * width * pairs, "mlp_act")


def table() -> list[dict[str, float]]:
    cost = cost_model()
    rows = []
    for tokens, (gen, cutlass) in BLOG24_US.items():
        per, wide = module_s(cost, tokens) * 1e6, module_s(cost, tokens, wide=True) * 1e6
        rows.append(
            {
                "tokens": tokens,
                "trtllm_gen_us": gen,
                "cutlass_us": cutlass,
                "per_expert_us": per,
                "group_width_us": wide,
                "per_expert_vs_trtllm_gen": per / gen - 1,
                "per_expert_vs_cutlass": per / cutlass - 1,
                "group_width_vs_trtllm_gen": wide / gen - 1,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None, help="write the table here")
    args = ap.parse_args()
    rows = table()
    head = ("tokens", "TRTLLM-Gen", "CUTLASS", "per-expert", "vs TRTLLM-Gen", "vs CUTLASS", "group-width", "vs it")
    print("| " + " | ".join(head) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['tokens']} | {r['trtllm_gen_us']:.1f} | {r['cutlass_us']:.1f} | {r['per_expert_us']:.1f} | "
            f"{r['per_expert_vs_trtllm_gen']:+.0%} | {r['per_expert_vs_cutlass']:+.0%} | {r['group_width_us']:.1f} | "
            f"{r['group_width_vs_trtllm_gen']:+.0%} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"source": "TensorRT-LLM tech blog 24 @2226a865", "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
