"""The low-load TTFT miss split into a per-request part and a per-prompt-token part (COVERAGE.md, "The TTFT miss at
low load: per request, not per prompt token (branch s13-ttft)").

    python benchmarks/ttft_pairs.py [--clients 4 8] [--out pairs.csv]     # simulates ~2 x 100 rows, ~1 min
    python benchmarks/ttft_pairs.py --pairs pairs.csv                      # tables only, from a saved CSV
    python benchmarks/ttft_pairs.py --pairs pairs.csv --carry 240 --carry-out carry.csv   # 16-128 clients

`--carry N`: does the low-load miss persist under load? N rows at 16-128 clients (seeded, `SeedSequence(13)`; none
of coverage.py's sample, `--ids`) of configurations that have a low-load pair are simulated, and each row's miss is
set against its configuration's low-load miss at the same prompt (short or long; any output length). A per-request
time outside the GPU's critical path predicts the same miss at every load; a per-prompt-step cost that the decoders
wait for cannot persist at a load where prompt steps x that cost would exceed the measured TPOT's budget.

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
from coverage_compare import per_row
from coverage_intercept import WARMUP_FROM
from coverage_recipes import measured_date
from coverage_trt_probe import simulate_kept
from ttft_parts import carry_table, pair_table, pair_tests, parts_of

SHORT, LONG = (1024, 1000), (8192, 8000)
KEYS = ["backend", "backend_version", "system", "model_path", "precision", "gemm_quant_mode", "moe_quant_mode",
        "tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size",
        "clients", "osl", "warmup"]  # fmt: skip
CFG = [k for k in KEYS if k not in ("clients", "osl")]  # a deployment, whatever the load and output length


def inferencex_agg(clients: list[int]) -> pd.DataFrame:
    """The InferenceX agg rows at the given client counts with a ~1k or ~8k prompt, expressible only."""
    d = pd.read_csv(cov.CSV)
    d = d[d["mode"] == "agg"].copy()
    d["clients"] = d.apply(cov.concurrency, axis=1)
    d = d[d["clients"].isin(clients) & (d.apply(cov.source, axis=1) == "inferencex")]
    d = d[d["isl"].isin(SHORT + LONG)]
    d["warmup"] = [measured_date(r) >= WARMUP_FROM for _, r in d.iterrows()]  # the client's warm-up (#480)
    d["prompt"] = np.where(d["isl"].isin(SHORT), "short", "long")
    return d[[cov.expressible(r) is None for _, r in d.iterrows()]]


def candidates(clients: list[int]) -> pd.DataFrame:
    """The rows that belong to a (short, long) prompt pair of one configuration at one client count."""
    d = inferencex_agg(clients)
    g = d.groupby(KEYS, dropna=False)["prompt"].transform("nunique")
    return d[g == 2]


def carry_rows(pairs_rows: pd.DataFrame, n: int, ids: Path) -> pd.DataFrame:
    """N rows at 16-128 clients, outside coverage.py's sample, of configurations with a low-load pair (seeded)."""
    d = inferencex_agg([16, 32, 64, 128])
    sample = {r["id"] for r in per_row(ids)}
    have = set(map(tuple, pairs_rows[CFG].astype(str).to_numpy()))
    known = np.array([k in have for k in map(tuple, d[CFG].astype(str).to_numpy())], dtype=bool)
    d = d[~d["id"].isin(sample).to_numpy() & known]
    rng = np.random.default_rng(np.random.SeedSequence(13))
    return d.iloc[np.sort(rng.permutation(len(d))[:n])]


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
    ap.add_argument("--carry", type=int, default=0, help="also simulate N rows at 16-128 clients (see the doc)")
    ap.add_argument("--carry-out", type=Path, help="write the --carry rows here")
    ap.add_argument("--carry-from", type=Path, help="read --carry rows from a CSV written by --carry-out")
    ap.add_argument("--ids", type=Path, default=cov.ROOT / "benchmarks" / "results" / "coverage_results.json")
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
    if args.carry or args.carry_from:
        carry(args, rows)


def carry(args: argparse.Namespace, rows: pd.DataFrame) -> None:
    """The low-load miss of each configuration set against its misses at 16-128 clients (module doc)."""
    if args.carry_from:
        high = pd.read_csv(args.carry_from)
    else:
        high = simulate(carry_rows(rows, args.carry, args.ids))
        if args.carry_out:
            high.to_csv(args.carry_out, index=False)
    table = carry_table(high, rows, CFG)
    print(f"\n== {len(table)} rows at 16-128 clients against their configuration's low-load miss (ms)")
    by = table.groupby(["backend", "clients"])
    cols = ["miss", "low_miss", "rest"]
    print(by[cols].median().round(1).assign(rows=by.size(), err=by["err"].median().round(3),
                                            err_low=by["err_low"].median().round(3)).to_string())  # fmt: skip
    heavy = table[table["stall"] > 0.25]
    print("\nrows where a per-prompt-step stall of the low-load miss would take > 25 % of each second (medians):")
    print(heavy.groupby("backend")[["stall", "tpot_x_stall", "tpot_x_meas", "miss", "low_miss"]].median().round(2)
          .assign(rows=heavy.groupby("backend").size()).to_string())  # fmt: skip
    grow = table[(table["low_miss"] > 20) & (table["miss"] > 0) & (table["clients"] <= 64)]
    print("\nconstant time (miss x 1) or iterations (x the TPOT growth)? 16-64 clients, low-load miss > 20 ms:")
    print(grow.groupby("backend")[["miss_x", "tpot_x_load"]].median().round(2)
          .assign(rows=grow.groupby("backend").size()).to_string())  # fmt: skip
    for backend, g in table.groupby("backend"):
        rho = g["miss"].corr(g["low_miss"], method="spearman")
        print(
            f"{backend}: Spearman(miss, low-load miss) {rho:+.2f}; median |TTFT err| {g['err'].abs().median():.1%}"
            f" -> {g['err_low'].abs().median():.1%} with the configuration's low-load miss added (a diagnostic)"
        )


if __name__ == "__main__":
    main()
