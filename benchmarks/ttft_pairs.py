"""The low-load TTFT miss split into a per-request part and a per-prompt-token part (COVERAGE.md, "The TTFT miss at
low load: per request, not per prompt token (branch s13-ttft)").

    python benchmarks/ttft_pairs.py [--clients 4 8] [--out pairs.csv]     # simulates ~2 x 100 rows, ~1 min
    python benchmarks/ttft_pairs.py --pairs pairs.csv                      # tables only, from a saved CSV

Every InferenceX agg configuration of the silicon file (same backend, release, GPU, model, precision and layout)
measured at the same client count and output length with a ~1k and a ~8k prompt (1024 / 8192, or 1000 / 8000) is
a pair. At <= 8 clients the GPU is mostly decoding and the loop barely queues, so the two rows differ by the
prompt alone: the miss (measured - simulated mean TTFT) at the short prompt is what is paid per request, and its
growth from the short to the long prompt, per 1,000 prompt tokens, what is paid per prompt token. Each row is
simulated as coverage.py does (`coverage_trt_probe.simulate_kept`); nothing is fitted.

What each candidate mechanism predicts (`ttft_parts.pair_tests` states them next to the numbers):
- per-prompt-token host work (server-side tokenisation of the random-text prompt, per-token tensors or block hashes
  in Python): a slope miss, the same in ms per 1k tokens on every GPU of one backend (host side), and in vLLM too
  (its API server tokenises the same text);
- a prompt step priced too low on the GPU: a slope miss as a factor of the simulated slope, larger on slower GPUs;
- a per-request or per-prompt-step host time (front end, eager context forward): an intercept miss that does not
  grow with the prompt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from coverage_intercept import WARMUP_FROM
from coverage_recipes import measured_date
from coverage_trt_probe import simulate_kept
from ttft_parts import pair_table, pair_tests, parts_of

SHORT, LONG = (1024, 1000), (8192, 8000)
KEYS = ["backend", "backend_version", "system", "model_path", "precision", "gemm_quant_mode", "moe_quant_mode",
        "tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size",
        "clients", "osl", "warmup"]  # fmt: skip


def candidates(clients: list[int]) -> pd.DataFrame:
    """The InferenceX agg rows that belong to a (short, long) pair at the given client counts, expressible only."""
    d = pd.read_csv(cov.CSV)
    d = d[d["mode"] == "agg"].copy()
    d["clients"] = d.apply(cov.concurrency, axis=1)
    d = d[d["clients"].isin(clients) & (d.apply(cov.source, axis=1) == "inferencex")]
    d = d[d["isl"].isin(SHORT + LONG)]
    d["warmup"] = [measured_date(r) >= WARMUP_FROM for _, r in d.iterrows()]  # the client's warm-up (#480)
    d["prompt"] = np.where(d["isl"].isin(SHORT), "short", "long")
    d = d[[cov.expressible(r) is None for _, r in d.iterrows()]]
    g = d.groupby(KEYS, dropna=False)["prompt"].transform("nunique")
    return d[g == 2]


def simulate(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for _, row in rows.iterrows():
        df = simulate_kept(row)[2]
        prefill = parts_of(df, int(row["clients"]))["prefill"]
        rec = {k: row[k] for k in [*KEYS, "id", "isl", "prompt"]}
        rec |= {"measured_ms": float(row["silicon_ttft_ms"]), "sim_ms": 1e3 * float(df["ttft_s"].mean())}
        rec |= {"silicon_tpot_ms": float(row["silicon_tpot_ms"]), "tpot_ms": 1e3 * float(np.nanmean(df["tpot_s"]))}
        out.append(rec | {"sim_prefill_ms": prefill})
        print(row["id"], round(out[-1]["measured_ms"], 1), round(out[-1]["sim_ms"], 1), flush=True)
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--out", type=Path, help="write the simulated rows here")
    ap.add_argument("--warmup-only", action="store_true", help="only rows measured with the client's warm-up")
    ap.add_argument("--pairs", type=Path, help="read simulated rows from a CSV written by --out (no simulation)")
    args = ap.parse_args()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 300)
    if args.pairs:
        rows = pd.read_csv(args.pairs)
    else:
        rows = simulate(candidates(args.clients))
        if args.out:
            rows.to_csv(args.out, index=False)
    if args.warmup_only:
        rows = rows[rows["warmup"].astype(bool)]
    pairs = pair_table(rows, KEYS)
    cols = ["backend", "system", "model_path", "tp_size", "clients", "meas_short", "sim_short", "miss_short",
            "meas_slope", "sim_slope", "miss_slope", "slope_ratio"]  # fmt: skip
    show = pairs.assign(model_path=pairs["model_path"].str.split("/").str[-1])
    print(show[cols].sort_values(["backend", "model_path", "system"]).round(1).to_string(index=False))
    print("\n== medians by backend x GPU (ms; slopes in ms per 1,000 prompt tokens)")
    agg = {"pairs": ("miss_short", "size"), "miss_short": ("miss_short", "median"),
           "miss_slope": ("miss_slope", "median"), "slope_ratio": ("slope_ratio", "median")}  # fmt: skip
    print(pairs.groupby(["backend", "system"]).agg(**agg).round(2).to_string())  # type: ignore[call-overload]  # pandas named-agg stubs
    print("\n== medians by backend x model")
    print(pairs.groupby(["backend", "model_path"]).agg(**agg).round(2).to_string())  # type: ignore[call-overload]  # pandas named-agg stubs
    print()
    for line in pair_tests(pairs):
        print(line)


if __name__ == "__main__":
    main()
