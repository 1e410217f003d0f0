"""Two diagnostics of the TensorRT-LLM agg rows (COVERAGE.md, "TensorRT-LLM aggregated rows (branch s10-trtagg)").

    python benchmarks/coverage_trt_probe.py waves [--ids benchmarks/results/coverage_results.json]  # (d): first wave
    python benchmarks/coverage_trt_probe.py graphs                                       # (f): piecewise-graph contrast

`waves`: each TensorRT-LLM agg row of an earlier coverage JSON simulated as coverage.py does, with the mean TTFT of
the first wave (the `clients` requests sent at t = 0) and of the rest, and the error the measurement would have if
it were the first wave alone. `graphs`: the DeepSeek-R1 fp8 B200 MTP rows measured on 2026-02-05 (recipe
5d517074c, piecewise CUDA graphs for context steps above CONC 4 / 8 / 16 at 1k/1k, 1k/8k, 8k/1k, no attention DP),
measured minus simulated TTFT by load. Nothing is fitted; both only read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from ttft_parts import waves as first_and_rest

import sim
from sim.config.scenario import load_scenario


def simulate_kept(row: pd.Series) -> tuple[float, float, pd.DataFrame]:
    """coverage.simulate, keeping the requests table (also benchmarks/ttft_gap.py's)."""
    kept: dict[str, pd.DataFrame] = {}

    def run(sc: dict[str, Any]) -> pd.DataFrame:
        kept["df"] = sim.run(load_scenario(sc)).requests
        return kept["df"]

    orig, cov._run = cov._run, run
    try:
        ttft, tpot = cov.simulate(row)
    finally:
        cov._run = orig
    return ttft, tpot, kept["df"]


def waves(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for _, row in rows.iterrows():
        ttft, _, df = simulate_kept(row)
        c = cov.concurrency(row)
        first, rest = first_and_rest(df, c)
        meas = float(row["silicon_ttft_ms"]) / 1e3
        out.append(
            {"id": row["id"], "source": cov.source(row), "clients": c, "measured_s": meas, "sim_s": ttft}
            | {"first_wave_s": first, "rest_s": rest, "err": ttft / meas - 1, "err_first_only": first / meas - 1}
        )
    return pd.DataFrame(out)


def graphs(df: pd.DataFrame) -> pd.DataFrame:
    sel = df[
        (df["backend"] == "trtllm")
        & (df["mode"] == "agg")
        & df["silicon_data_source"].str.contains("measured=2026-02-05")
        & df["model_path"].str.contains("DeepSeek")
        & (df["precision"] == "fp8")
        & (df["attention_dp_size"] == 1)
    ]
    sel = sel[sel.apply(cov.agg_mtp.group, axis=1) == "agg, MTP"].drop_duplicates(["isl", "osl", "batch_size"])
    out = []
    for _, row in sel.iterrows():
        ttft, _, _ = simulate_kept(row)
        meas = float(row["silicon_ttft_ms"])
        out.append({"isl": int(row["isl"]), "osl": int(row["osl"]), "clients": cov.concurrency(row),
                    "measured_ms": meas, "sim_ms": ttft * 1e3, "miss_ms": meas - ttft * 1e3})  # fmt: skip
    return pd.DataFrame(out).sort_values(["isl", "osl", "clients"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("waves", "graphs"))
    ap.add_argument("--ids", type=Path, default=cov.ROOT / "benchmarks" / "results" / "coverage_results.json")
    args = ap.parse_args()
    df = pd.read_csv(cov.CSV).set_index("id", drop=False)
    pd.set_option("display.width", 200)
    if args.what == "graphs":
        print(graphs(df).round(1).to_string(index=False))
        return
    ids = [r["id"] for r in json.loads(args.ids.read_text())["errors"]["per_row"]]
    rows = df.loc[[i for i in ids if i in df.index]]
    res = waves(rows[(rows["backend"] == "trtllm") & (rows["mode"] == "agg")])
    print(res.drop(columns="id").round(3).to_string(index=False))
    for src, g in res.groupby("source"):
        print(f"{src}: {len(g)} rows, median |err| {g['err'].abs().median():.1%}, "
              f"as first wave only {g['err_first_only'].abs().median():.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
