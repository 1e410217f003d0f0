"""Is the low-load TTFT miss host time (per layer, independent of the GPU) or GPU time? A test the rows can fail.

    python benchmarks/coverage_host_test.py [--clients 4] [--csv out.csv]

For every InferenceX agg configuration measured at isl 1,024 and 8,192 (osl 1,024, `--clients` clients, measured
with the client's warm-up), `coverage_miss_split.table` gives the measured TTFT, one simulated prefill step's
kernels (no eager, no launch term) and the miss. Two mechanisms predict different things about the 1k miss with
the eager term taken out (miss + the preset's H):

- host time of an uncaptured (eager or compiled-but-ungraphed) forward, layers x h: the miss per layer is about
  the same across configurations of one engine, whatever the GPU and precision, and does not grow with the GPU
  time of the same step (kernels per layer);
- GPU time servesim under-prices (kernels, or decode iterations the first token waits for): the miss grows with
  the step's kernels or with the measured TPOT.

Printed per backend: the rank correlation (Spearman) of miss per layer with kernels per layer and with measured
TPOT per layer, and the spread (interquartile range / median) of miss per layer against that of miss / kernels and
miss / TPOT. The host reading survives where miss per layer is the tightest of the three and not correlated with
the GPU terms. Nothing is fitted; both halves (`coverage.half`) are printed separately.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage_miss_split as ms


def spread(s: pd.Series) -> float:
    """Interquartile range over median: a scale-free spread."""
    q1, q2, q3 = s.quantile([0.25, 0.5, 0.75])
    return float((q3 - q1) / q2) if q2 else float("nan")


def summarise(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (half, backend), g in t.groupby(["half", "backend"]):
        rows.append(
            {
                "half": half,
                "backend": backend,
                "configs": len(g),
                "miss_per_layer_ms": g["miss_per_layer_ms"].median(),
                "rho_kernels": g["miss_per_layer_ms"].corr(g["k1_per_layer_ms"], method="spearman"),
                "rho_tpot": g["miss_per_layer_ms"].corr(g["tpot_per_layer_ms"], method="spearman"),
                "spread_per_layer": spread(g["miss_per_layer_ms"]),
                "spread_per_kernels": spread(g["miss_over_k1"]),
                "spread_per_tpot": spread(g["miss_over_tpot"]),
            }
        )
    return pd.DataFrame(rows).set_index(["half", "backend"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--csv", type=Path, default=None)
    args = ap.parse_args()
    t = ms.table(args.clients)
    t = t[t["layers"] > 0].copy()
    # the miss with the preset's eager term taken out: what a host term would have to explain
    t["miss_ms"] = t["miss_1k_ms"] + t["host_ms"]
    t["miss_per_layer_ms"] = t["miss_ms"] / t["layers"]
    t["k1_per_layer_ms"] = t["k1_ms"] / t["layers"]
    t["tpot_per_layer_ms"] = t["tpot_ms"] / t["layers"]
    t["miss_over_k1"] = t["miss_ms"] / t["k1_ms"]
    t["miss_over_tpot"] = t["miss_ms"] / t["tpot_ms"]
    if args.csv:
        t.to_csv(args.csv, index=False)
    cols = ["backend", "model", "gpu", "layers", "ttft_1k_ms", "k1_ms", "tpot_ms", "miss_ms", "miss_per_layer_ms"]
    print(t.sort_values(["backend", "model", "gpu"])[[*cols, "half"]].round(2).to_string(index=False))
    print()
    print(summarise(t).round(2).to_string())


if __name__ == "__main__":
    main()
