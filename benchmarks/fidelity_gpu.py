"""GPU check of the calibration harness: measure on CUDA, compare with Vidur's tables for the same GPU.

Run on a machine with one NVIDIA GPU (a few minutes on an H100/A100):

    python benchmarks/fidelity_gpu.py --gpu h100-sxm --out runs/gpu-check

It (1) runs `servesim calibrate measure --device cuda` for Llama-2-7B shapes (bf16, CUDA events, tp 1,
plus NCCL all-reduce when >= 2 GPUs are visible), (2) prices every measured operator row with the
shipped Vidur tables of that GPU (`table` kind) and reports the per-operator ratio ours/Vidur, and
(3) prints the attention tables the shipped data lacks, with the achieved fraction of peak, so the
spec-sheet attention efficiencies (0.7 compute / 0.8 bandwidth) can be checked. Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import sim  # noqa: F401  (initialises sim before hwprofiles' catalogue)
from calibrate.harness import Plan, measure
from hwprofiles import catalog
from hwprofiles.efficiency import Widths, attention_roof
from hwprofiles.tables import TOKEN_OPS, load_tables
from sim.costmodel.build import build_physical
from sim.costmodel.models import TableCostConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", default="h100-sxm", help="catalogue GPU this machine is (for the comparison)")
    ap.add_argument("--model", default="llama-2-7b")
    ap.add_argument("--out", type=Path, default=Path("runs/gpu-check"))
    ap.add_argument("--max-tokens", type=int, default=4096)
    args = ap.parse_args()
    model, gpu = catalog.model(args.model), catalog.gpu(args.gpu)
    plan = Plan(max_tokens=args.max_tokens, max_batch=128, max_context=4096, reps=30, warmup=5)
    d = measure(model, args.out, device="cuda", plan=plan, log=print)
    ours = load_tables(d)
    vidur = build_physical(TableCostConfig(efficiency="constant"), model, gpu, 1)
    report: dict[str, dict[str, float]] = {}
    for op in TOKEN_OPS:
        if op not in ours.operators or op == "lm_head":
            continue
        m = ours.operators["num_tokens"].to_numpy(np.int64)
        mine = ours.operators[op].to_numpy(np.float64) * 1e-3
        theirs = np.array([vidur.operator(op, int(x)) for x in m])
        ratio = mine / theirs
        report[op] = {"median_ratio": float(np.median(ratio)), "mape_pct": float(np.mean(np.abs(ratio - 1)) * 100)}
        print(f"{op:26s} ours/vidur median {np.median(ratio):.3f}  MAPE {np.mean(np.abs(ratio - 1)) * 100:5.1f}%")
    w = Widths.of(model, 1)
    att = ours.attention
    for phase in ("prefill", "decode"):
        rows = att[att["phase"] == phase]
        b, q, kv = (rows[c].to_numpy(np.float64) for c in ("batch", "q_tokens", "kv_tokens"))
        roof = attention_roof(phase, b, q, kv, w, gpu.bf16_flops, gpu.mem_bw)
        frac = roof / (rows["time_ms"].to_numpy() * 1e-3)
        report[f"attention_{phase}"] = {
            "median_fraction_of_peak": float(np.median(frac)),
            "max_fraction_of_peak": float(np.max(frac)),
        }
        print(f"attention {phase:8s} achieved fraction of peak: median {np.median(frac):.2f}, max {np.max(frac):.2f}")
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}/ (tables, provenance) and gpu_check.json")


if __name__ == "__main__":
    main()
