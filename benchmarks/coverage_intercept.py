"""The TTFT servesim still misses at low load, in decode iterations, by the things a hypothesis can be tested on.

    python benchmarks/coverage_intercept.py [--clients 16] [--csv out.csv]

Every InferenceX agg row with at most `--clients` clients (one row per configuration and client count) is
simulated as coverage.py does (recipe knobs included) with the first token sent at once, and its unexplained TTFT
is measured TTFT - simulated TTFT, also counted in the row's measured TPOTs (`iters`). Groups:

- `warmup`: whether the run had the client's warm-up. InferenceX's `benchmark_lib.sh` runs `--num-warmups
  $((2 * CONC))` since SemiAnalysisAI/InferenceX d053ae24e (2026-01-21, "upstream kimbochen/bench_serving, adding
  warmup (#480)"): rows measured from 2026-01-22 had it, earlier ones only the single test prompt.
- `stream_interval`: the recipe's `--stream-interval` / `stream_interval` at the row's date (`STREAM`, read from
  the recipes: a held first token would add at least stream_interval - 1 iterations).

Nothing is fitted by default; this says where the miss is (COVERAGE.md, "Where the TTFT error comes from").
`--fit out.json` also writes, per backend, the median miss in seconds of the rows with warm-up in the *fit half*
(`coverage.half(row) == "fit"`: by configuration, so every client count and prompt length of a deployment is
on one side) — an estimate of a per-request time servesim does not model,
for coverage.py's `--per-request-s`, whose errors are then reported on the other half only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cv
from coverage_recipes import family, measured_date

WARMUP_FROM = "2026-01-22"  # first measurement date after InferenceX d053ae24e (2026-01-21)
# Recipe stream interval by (backend, model family, precision, GPU), read at the rows' dates from InferenceX's
# benchmarks/*.sh and benchmarks/single_node/*.sh: dsr1_fp4_b200(_docker).sh 10, dsr1_fp8_b200(_docker|_slurm).sh
# 30, dsr1_fp8_h200.sh 10, dsr1_fp4_b300.sh 10, dsr1_fp8_b300.sh 30, qwen3.5_*_b200.sh and qwen3.5_{bf16,fp4}_b300.sh
# 30, qwen3.5_fp8_b300.sh and qwen3.5_fp8_h200.sh 50, glm5_fp8_b200.sh 30, glm5_fp8_h200.sh none; every TensorRT-LLM
# DeepSeek-R1 / Llama-3.1-70B recipe 10, gpt-oss 20; vLLM MiniMax-M2.5 B200/B300 from 2026-04-03 and Kimi-K2.5
# fp4 B200 from 2026-04-20 `--stream-interval 20`, earlier and elsewhere none.
STREAM: dict[tuple[str, str, str, str], int] = {
    ("sglang", "dsr1", "fp4", "b200_sxm"): 10,
    ("sglang", "dsr1", "fp8", "b200_sxm"): 30,
    ("sglang", "dsr1", "fp8", "h200_sxm"): 10,
    ("sglang", "dsr1", "fp4", "b300_sxm"): 10,
    ("sglang", "dsr1", "fp8", "b300_sxm"): 30,
    ("sglang", "qwen3.5", "bf16", "b200_sxm"): 30,
    ("sglang", "qwen3.5", "fp4", "b200_sxm"): 30,
    ("sglang", "qwen3.5", "fp8", "b200_sxm"): 30,
    ("sglang", "qwen3.5", "bf16", "b300_sxm"): 30,
    ("sglang", "qwen3.5", "fp4", "b300_sxm"): 30,
    ("sglang", "qwen3.5", "fp8", "b300_sxm"): 50,
    ("sglang", "qwen3.5", "fp8", "h200_sxm"): 50,
    ("sglang", "glm5", "fp8", "b200_sxm"): 30,
}


def fit_per_request(res: pd.DataFrame) -> dict[str, float]:
    """Per backend, the median miss (s) of the fit-half rows measured with the client's warm-up."""
    fit = res[res["warmup"] & (res["half"] == "fit")]
    return {str(b): round(float(g["miss_ms"].median()) / 1e3, 4) for b, g in fit.groupby("backend")}


def stream_interval(row: pd.Series, date: str) -> int:
    b, fam = str(row["backend"]), family(str(row["model_path"]))
    if b == "trtllm":
        return 20 if fam == "gptoss" else 10
    if b == "vllm":
        gpu = str(row["system"])
        if "minimax" in fam and gpu in ("b200_sxm", "b300_sxm") and date >= "2026-04-03":
            return 20
        return 20 if "kimi" in fam and row["precision"] == "fp4" and gpu == "b200_sxm" and date >= "2026-04-20" else 1
    return STREAM.get((b, fam, str(row["precision"]), str(row["system"])), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--fit", type=Path, default=None, help="write the fit-half per-request estimate here")
    ap.add_argument("--from-csv", type=Path, default=None, help="read a previous --csv instead of simulating")
    args = ap.parse_args()
    if args.from_csv is not None:
        report(pd.read_csv(args.from_csv), args.fit)
        return
    d = pd.read_csv(cv.CSV)
    d["clients"] = d.apply(cv.concurrency, axis=1)
    d = d[(d["mode"] == "agg") & (d.apply(cv.source, axis=1) == "inferencex") & (d["clients"] <= args.clients)]
    keys = ["model_path", "system", "backend", "precision", "tp_size", "attention_dp_size", "moe_ep_size", "isl"]
    d = d.drop_duplicates([*keys, "osl", "clients"])
    out = []
    for _, r in d.iterrows():
        if cv.expressible(r) is not None:
            continue
        date = measured_date(r)
        ttft, _ = cv.simulate(r, sglang_first=True)
        miss = r["silicon_ttft_ms"] - ttft * 1e3
        out.append(
            {
                "id": r["id"],
                "half": cv.half(r),
                "backend": r["backend"],
                "isl": int(r["isl"]),
                "warmup": date >= WARMUP_FROM,
                "stream_interval": stream_interval(r, date),
                "miss_ms": miss,
                "iters": miss / r["silicon_tpot_ms"],
            }
        )
    res = pd.DataFrame(out)
    if args.csv:
        res.to_csv(args.csv, index=False)
    report(res, args.fit)


def report(res: pd.DataFrame, fit: Path | None) -> None:
    pd.set_option("display.width", 200)
    by = ["backend", "stream_interval", "warmup"]
    print(res.groupby(by)[["miss_ms", "iters"]].agg(["median", "count"]).round(1).to_string())
    held = res[res["stream_interval"] > 1]
    below = held.groupby(["backend", "stream_interval"]).apply(
        lambda g: f"{int((g['iters'] < g.name[1] - 1).sum())}/{len(g)}", include_groups=False
    )
    print("\nrows whose whole miss is below stream_interval - 1 iterations (a held first token would exceed it):")
    print(below.to_string())
    if fit is not None:
        est = fit_per_request(res)
        fit.write_text(json.dumps(est, indent=2) + "\n")
        print(f"\nper-request estimate from the fit half (s): {est}")


if __name__ == "__main__":
    main()
