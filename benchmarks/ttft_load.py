"""The TTFT the load adds at 32-128 clients that servesim does not (COVERAGE.md, "The TTFT that 128 clients add:
a doubling test (branch s15-ttft)").

    python benchmarks/ttft_load.py --out rows.csv            # simulates the rows (~420 at 32-128 clients)
    python benchmarks/ttft_load.py --rows rows.csv           # tables only, from a saved CSV
    python benchmarks/ttft_load.py --rows rows.csv --pairs benchmarks/results/ttft_pairs_s13-ttft_results.csv

Session 13's `ttft_pairs.py --carry` set each row's miss against its deployment's miss at 4-8 clients and found a
further ~0.5 s at 128 clients (its "rest"). That needs a low-load row of the same deployment and assumes the
low-load miss carries unchanged. Here the load itself is the variable: every InferenceX agg row of TensorRT-LLM and
SGLang at 32, 64 and 128 clients (expressible, ~1k / ~8k prompt and output lengths) is simulated as coverage.py
does (`simulate_row`, nothing fitted), and each doubling of one deployment at fixed lengths
(c -> 2c) gives rest = measured growth of the mean TTFT - simulated growth (`ttft_parts.load_steps`). A term that
does not change with the load cancels; what is left is load-dependent by construction.

What each candidate predicts (`ttft_parts.load_tests` prints the deciding numbers):
- the start-up burst priced too low (every client sends at t = 0; the first wave is 1 request in 10 of the mean):
  rest independent of the output length; x2 per doubling, as the simulated first wave grows; one factor
  (`burst_x`) for the 1k and the 8k prompt of one deployment;
- a queue for the prompt step (context slot, token budget) priced too low: rest grows with the prompt tokens
  per second the loop sends, so far less at 8k output (~1/7 the prompts per second) than at 1k, and faster than
  x2 per doubling near saturation;
- a per-stream time (front end, detokeniser, responses of the other running streams): rest independent of the
  prompt length;
- KV admission (TensorRT-LLM's no-evict reservation, SGLang's new-token ratio): rest only where KV is near full;
- the arrival rate set by a mispriced decode (a closed loop sends prompts at clients / E2E): rest where the
  simulated TPOT grows less than the measured one.

`--pairs` (session 13's low-load pairs): a prompt step priced too low by the deployment's own low-load factor
(measured / simulated slope at 4-8 clients, other rows) predicts rest = (factor - 1) x the simulated burst's
growth (`ttft_parts.slope_burst`); a diagnostic, not a model.

Rows in coverage.py's 149-row sample are flagged (`in_sample`); the tables are printed for all rows and for the
rows outside it. SGLang rows measured before the client's warm-up (2026-01-22) carry a one-off cold start of
seconds (COVERAGE_LOG, s8-ttft (a)) and are left out unless `--all`; rows measured twice under two model names
(the same run) count once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from coverage_compare import per_row
from ttft_pairs import CFG, KEYS, inferencex_agg
from ttft_parts import load_steps, load_tests, pair_table, parts_of, slope_burst

import sim
from sim.config.scenario import load_scenario

SAME_RUN = [k for k in CFG if k not in ("model_path", "warmup")] + ["isl", "osl", "clients", "meas_ms"]


def simulate_row(row: pd.Series) -> tuple[pd.DataFrame, float]:
    """coverage.simulate on one row, keeping the requests table and the run's peak KV utilisation."""
    kept: dict[str, Any] = {}

    def run(sc: dict[str, Any]) -> pd.DataFrame:
        res = sim.run(load_scenario(sc))
        kept["df"], kept["kv"] = res.requests, float(res.timeline["kv_utilization"].max())
        return res.requests

    orig, cov._run = cov._run, run
    try:
        cov.simulate(row)
    finally:
        cov._run = orig
    return kept["df"], kept["kv"]


def simulate(rows: pd.DataFrame, sample: set[str]) -> pd.DataFrame:
    out = []
    for _, row in rows.iterrows():
        df, kv = simulate_row(row)
        p = parts_of(df, int(row["clients"]))
        rec = {k: row[k] for k in [*CFG, "id", "isl", "osl", "clients"]} | {"in_sample": row["id"] in sample}
        rec |= {"meas_ms": float(row["silicon_ttft_ms"]), "sim_ms": 1e3 * float(df["ttft_s"].mean())}
        rec |= {"meas_tpot": float(row["silicon_tpot_ms"]), "sim_tpot": 1e3 * float(np.nanmean(df["tpot_s"]))}
        rec |= {"first_wave": p["first_wave"], "later": p["later"], "queue": p["queue"], "prefill": p["prefill"]}
        out.append(rec | {"kvu_max": kv})
        print(row["id"], round(rec["meas_ms"]), round(rec["sim_ms"]), flush=True)
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--out", type=Path, help="write the simulated rows here")
    ap.add_argument("--rows", type=Path, help="read simulated rows from a CSV written by --out (no simulation)")
    ap.add_argument("--all", action="store_true", help="keep SGLang rows measured before the client's warm-up")
    ap.add_argument("--pairs", type=Path, help="ttft_pairs.py --out CSV (4-8 clients): the slope diagnostic")
    ap.add_argument("--ids", type=Path, default=cov.ROOT / "benchmarks" / "results" / "coverage_s14_final_results.json")
    args = ap.parse_args()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 300)
    if args.rows:
        rows = pd.read_csv(args.rows)
    else:
        d = inferencex_agg(args.clients)
        d = d[d["backend"] != "vllm"]
        rows = simulate(d, {r["id"] for r in per_row(args.ids)})
        if args.out:
            rows.to_csv(args.out, index=False)
    rows = rows.drop_duplicates(SAME_RUN)
    if not args.all:
        rows = rows[~((rows["backend"] == "sglang") & ~rows["warmup"].astype(bool))]
    dep = list(CFG)
    for name, part in (("all rows", rows), ("rows outside coverage.py's sample", rows[~rows["in_sample"]])):
        steps = load_steps(part, [*dep, "isl", "osl"])
        print(f"\n== {name}: {len(part)} rows, {len(steps)} doublings")
        med = steps.groupby(["backend", "hi", "isl", "osl"])[["d_meas", "d_sim", "rest", "burst", "burst_x"]]
        print(med.median().round(2).assign(n=steps.groupby(["backend", "hi", "isl", "osl"]).size()).to_string())
        for line in load_tests(steps, dep):
            print(line)
        if args.pairs:
            _slope_diagnostic(slope_burst(steps, pair_table(pd.read_csv(args.pairs), KEYS), dep))


def _slope_diagnostic(got: pd.DataFrame) -> None:
    """The rest against (the deployment's low-load slope factor - 1) x the simulated burst (`slope_burst`)."""
    print("  a prompt step priced too low by the deployment's low-load factor, seen through the burst:")
    for (backend, isl, osl), g in got.groupby(["backend", "isl", "osl"]):
        rho = g["rest"].corr(g["pred_rest"], method="spearman") if len(g) > 2 else float("nan")
        print(
            f"    {backend} {isl}/{osl}: {len(g)} doublings; rest {g['rest'].median():.0f} ms, predicted "
            f"{g['pred_rest'].median():.0f} ms (median factor - 1: {g['slope_ratio'].median() - 1:.2f}); "
            f"Spearman {rho:+.2f}"
        )


if __name__ == "__main__":
    main()
