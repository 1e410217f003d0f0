"""Where the silicon TTFT goes: per-token prefill cost and per-request intercept, measured vs simulated.

    python benchmarks/coverage_decompose.py --md /tmp/decompose.md

InferenceX runs each agg configuration (`config_id`) at isl 1024 and 8192 with the same osl (1024) and
concurrency. At 4 clients queueing is small, so between the two lengths the measured mean TTFT grows by the
prefill of the 7,168 extra tokens: slope = (TTFT_8k - TTFT_1k) / 7168 is the measured per-token prefill
cost and TTFT_1k - 1024 x slope the per-request intercept (everything a first token waits for besides the
prefill's per-token work). The simulated counterparts come from the row's cost model: one prefill step of
1,024 and of 8,192 tokens (`iteration`). Nothing is fitted; the table says which part of TTFT is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov

from sim.cluster.pools import pool_specs
from sim.config.scenario import load_scenario
from sim.errors import ServesimError

SHORT, LONG = 1024, 8192


def pairs(df: pd.DataFrame, clients: int = 4) -> list[tuple[pd.Series, pd.Series]]:
    """(isl 1024, isl 8192) rows of the same agg config, osl 1024, `clients` clients."""
    df = df[(df["mode"] == "agg") & (df["osl"] == 1024)].copy()
    df["cfg"] = df["silicon_data_source"].str.extract(r"config_id=(\d+)")[0]
    df["c"] = df.apply(cov.concurrency, axis=1)
    df = df[df["cfg"].notna() & (df["c"] == clients)]
    out = []
    for _, g in df.groupby("cfg"):
        a, b = g[g["isl"] == SHORT], g[g["isl"] == LONG]
        if len(a) and len(b):
            out.append((a.iloc[0], b.iloc[0]))
    return out


def decompose(a: pd.Series, b: pd.Series) -> dict[str, Any] | None:
    try:
        sc = cov.scenario(b, cov._fixed_workload(1, b))
        sc["serving_engine"] = {"kind": cov.ENGINES[str(b["backend"])]}
        cost = pool_specs(load_scenario(sc))[0].cost
    except ServesimError:
        return None
    p1, p8 = cost.iteration([(SHORT, 0)], 0, 0), cost.iteration([(LONG, 0)], 0, 0)
    slope = (b["silicon_ttft_ms"] - a["silicon_ttft_ms"]) / (LONG - SHORT)  # ms per token
    sim_slope = (p8 - p1) * 1e3 / (LONG - SHORT)
    return {
        "backend": b["backend"],
        "model": str(b["model_path"]).split("/")[-1],
        "gpu": b["system"],
        "tpot_ms": a["silicon_tpot_ms"],
        "slope_us": slope * 1e3,
        "sim_slope_us": sim_slope * 1e3,
        "intercept_ms": a["silicon_ttft_ms"] - SHORT * slope,
        "sim_intercept_ms": p1 * 1e3 - SHORT * sim_slope,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=cov.CSV)
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args()
    rows = [d for a, b in pairs(pd.read_csv(args.csv)) if (d := decompose(a, b)) is not None]
    t = pd.DataFrame(rows)
    t["slope_ratio"] = t["slope_us"] / t["sim_slope_us"]
    t["intercept_in_tpots"] = t["intercept_ms"] / t["tpot_ms"]
    g = t.groupby("backend").agg(
        configs=("slope_us", "size"),
        slope_us=("slope_us", "median"),
        sim_slope_us=("sim_slope_us", "median"),
        slope_ratio=("slope_ratio", "median"),
        intercept_ms=("intercept_ms", "median"),
        sim_intercept_ms=("sim_intercept_ms", "median"),
        intercept_in_tpots=("intercept_in_tpots", "median"),
    )
    cols = list(g.columns)
    lines = ["| backend | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(f"{v:.3g}" for v in r) + " |" for k, r in g.iterrows()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
