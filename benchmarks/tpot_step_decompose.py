"""Where a row's simulated TPOT goes: the decode-only step at the row's batch and mean context, by operator.

    python benchmarks/tpot_step_decompose.py --results <coverage results json> [--backend vllm] [--json out.json]

For each agg row of a coverage.py / tpot_groups.py results file: the cost model of the scenario coverage.py builds
(`coverage.scenario` with the recipe's engine terms), one decode-only step of the instance's share of the clients
at the mean context a closed loop holds (every client mid-way through its output: isl + osl / 2 at InferenceX's
0.9 mean length ratio), split into the cost model's operators (`breakdown`), beside the measured and the
simulated TPOT. The simulated TPOT minus this step is what prompt steps add to each decoder (prefill interference,
eager host time, speculative decoding where the row ran it): read it with a results file of the same tree, as
the step is priced by this tree's cost model. A diagnostic: nothing is fitted, no median is taken.
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

from sim.cluster.pools import pool_specs
from sim.config.scenario import load_scenario

MEAN_LENGTH = 0.5 * (1 + cov.RANGE_RATIO)  # lengths uniform in [0.8 x, x]


def step(row: pd.Series) -> tuple[int, int, dict[str, float]]:
    """(sequences per instance, their context sum, the decode step's operators in seconds) of the row."""
    c = cov.concurrency(row)
    sc = cov.scenario(row, cov._fixed_workload(1, row))
    terms, _ = cov.recipe_terms(row, c)
    sc["serving_engine"] = {**cov.serving_engine(row), **terms}
    cost = pool_specs(load_scenario(sc))[0].cost
    n = max(1, c // cov.instances(row))
    ctx = int(n * MEAN_LENGTH * (row["isl"] + row["osl"] / 2))
    return n, ctx, cost.breakdown([], n, ctx)


def decompose(results: list[dict[str, Any]], backend: str | None = None) -> list[dict[str, Any]]:
    by_id = {r["id"]: r for r in results if r.get("tpot_ms") is not None and r.get("mode") == "agg"}
    df = pd.read_csv(cov.CSV)
    out = []
    for _, row in df[df["id"].isin(by_id)].iterrows():
        r = by_id[row["id"]]
        if backend and row["backend"] != backend:
            continue
        n, ctx, ops = step(row)
        total = sum(ops.values())
        out.append(
            {
                "id": row["id"],
                "backend": row["backend"],
                "model": str(row["model_path"]).split("/")[-1],
                "gpu": row["system"],
                "clients": int(cov.concurrency(row)),
                "seqs": n,
                "context": ctx,
                "measured_ms": float(r["silicon_tpot_ms"]),
                "simulated_ms": float(r["tpot_ms"]),
                "step_ms": total * 1e3,
                "prompt_share_ms": float(r["tpot_ms"]) - total * 1e3,
                "ops_ms": {k: v * 1e3 for k, v in ops.items() if v > 0},
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(cov.ROOT / "benchmarks" / "results" / "coverage_results.json"))
    ap.add_argument("--backend", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    data = json.loads(Path(args.results).read_text())
    results = data["errors"]["per_row"] if isinstance(data, dict) else data
    rows = decompose(results, args.backend)
    for d in rows:
        top = sorted(d["ops_ms"].items(), key=lambda kv: -kv[1])[:4]
        head = f"{d['backend']:6s} {d['model'][:18]:18s} {d['gpu'][:8]:8s} c{d['clients']:<4d}"
        ms = f"measured {d['measured_ms']:6.1f} simulated {d['simulated_ms']:6.1f} step {d['step_ms']:6.1f}"
        print(f"{head} {ms} prompts {d['prompt_share_ms']:+6.1f} | " + " ".join(f"{k} {v:.1f}" for k, v in top))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
