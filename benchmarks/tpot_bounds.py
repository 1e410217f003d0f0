"""Which agg silicon rows measured something their stated workload cannot produce: physical bounds, no fitting.

    python benchmarks/tpot_bounds.py [--results benchmarks/results/coverage_results.json ...] [--no-replicas] \
        [--json out.json]

A closed loop of c clients that measured mean TTFT and TPOT completes X = c / E2E requests a second (E2E =
TTFT + (osl - 1) x TPOT, Little's law; every client always has one request in flight). Two consequences
follow from the measurement alone, whatever engine ran it:

- *Prefill compute.* The GPUs must prefill X x isl prompt tokens a second, each at least 2 x active parameters
  FLOPs in the linear layers (attention excluded, so a lower bound). At the GPUs' spec-sheet dense peak for the
  deployment's activation precision (hwprofiles catalogue, each peak cited there), that takes
  `prefill_load = X x isl x 2 x active / (gpus x peak)` GPU-seconds per second. Above 1 the row is impossible.
- *KV memory.* The c - X x TTFT requests past their first token hold their KV at once: at least
  (isl + osl / 2) tokens each (MLA latent or K and V of every layer, not replicated over tensor-parallel ranks,
  at 8 bits a value whatever cache dtype the recipe set: a lower bound), against the GPUs' whole memory less the
  weights (`kv_load`). Above 1 the row cannot have had that many decoders resident, so its TPOT is not that of c
  decoders.

Lengths are taken at their conservative end (InferenceX draws isl and osl uniformly in [0.8 x, x]: isl at 0.8 x
for the load, osl at x for E2E). The GPUs counted are those of the scenario coverage.py simulates for the row
(`coverage.scenario`: instances x the layout's GPUs), so a reading that serves a row with several replicas (the
gap-analysis rows whose clients are k x batch, `coverage_layout.replicas`) is bounded on all of them.

A diagnostic only: the loads are computed from the measured latency, so they must never select which rows a
reported error counts (that would select rows by their measurement). Rows over a bound are listed with their
errors, beside the headline, never dropped from it ("TPOT by group (branch s8-tpot)", COVERAGE.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from coverage_compare import per_row

from hwprofiles import catalog
from sim.costmodel.layout import Layout
from sim.costmodel.quant import MODULES, Quantization


def simulated_gpus(row: pd.Series) -> tuple[int, int]:
    """(instances, GPUs of one instance) of the scenario coverage.py builds for the row: whatever replica reading
    coverage.scenario applies is the one bounded here."""
    cluster = cov.scenario(row, cov._fixed_workload(1, row))["cluster"]  # the workload does not shape the cluster
    layout = {k: v for k, v in cluster.items() if k not in ("instances", "router")}
    return int(cluster.get("instances", 1)), Layout(**layout).gpus


def bounds(row: pd.Series) -> dict[str, float] | None:
    """The row's prefill and KV loads implied by its own measurement on the GPUs servesim simulates for it (see
    the module docstring); None for rows these bounds do not cover (disagg pools)."""
    if row["mode"] != "agg":
        return None
    model, gpu = catalog.model(row["model_path"]), catalog.gpu(row["system"])
    q = cov.quantization(row, gpu)
    instances, per = simulated_gpus(row)
    gpus = instances * per
    c, isl, osl = cov.concurrency(row), float(row["isl"]), float(row["osl"])
    ttft, tpot = float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3
    low = cov.RANGE_RATIO if cov.source(row) == "inferencex" else 1.0
    e2e = ttft + (osl - 1.0) * tpot
    rate = c / e2e  # requests a second (Little's law on the closed loop)
    quant = Quantization(**q)
    # the fastest module's peak (`quantization.experts` may run on narrower cores than attention): a lower bound
    peak = max(gpu.peak_flops(quant.module(m).activations) or gpu.bf16_flops for m in (None, *MODULES))
    prefill = rate * low * isl * 2.0 * model.active_params / (gpus * peak)
    decoders = max(0.0, c - rate * ttft)  # requests past their first token
    kv_bits = min(8.0, quant.kv_bits)  # the smallest cache any of the three engines runs: a lower bound
    tokens = low * isl + 0.5 * low * osl
    weights = (
        Layout().weight_bytes_per_gpu(model, quant) if quant.is_mixed else model.weight_bytes(1, quant.weight_bits)
    )
    free = instances * (per * gpu.memory_bytes - weights)  # each holds the weights (per module's width when mixed)
    kv = decoders * tokens * model.kv_bytes_per_token(1, kv_bits, context=int(tokens)) / max(free, 1.0)
    return {"prefill_load": prefill, "kv_load": kv, "gpus": float(gpus), "instances": float(instances), "rate": rate}


def impossible(b: dict[str, float] | None) -> bool:
    return b is not None and (b["prefill_load"] > 1.0 or b["kv_load"] > 1.0)


def table(results: Path, over: set[str]) -> dict[str, Any]:
    """A results file's rows among `over` (the rows over a bound, from main's pass over the file), each with its
    own simulated error. No median is taken over the rest: the bounds come from the measured latency, so a split by
    them would select rows by their measurement."""
    res = pd.DataFrame(per_row(results)).set_index("id", drop=False)
    flagged = [i for i in res["id"] if i in over]
    return {
        "rows": len(res),
        "over_bound": [{"id": i, "tpot_err": float(res.loc[i, "tpot_err"])} for i in sorted(flagged)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--results",
        type=Path,
        nargs="*",
        default=[Path(__file__).parent / "results" / "coverage_results.json"],
        help="coverage.py / tpot_groups.py results whose rows to split",
    )
    ap.add_argument(
        "--replicas",
        action=argparse.BooleanOptionalAction,
        default=cov.READ_REPLICAS,
        help="as coverage.py --replicas / --no-replicas: k x batch clients as k replicas (on by default)",
    )
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    cov.READ_REPLICAS = a.replicas
    df = pd.read_csv(cov.CSV).set_index("id", drop=False)
    df = df[[cov.expressible(r) is None for _, r in df.iterrows()]]
    rows = []
    for i, r in df.iterrows():
        b = bounds(r)
        if b is not None:
            rows.append({"id": i, **b, "impossible": impossible(b)})
    allb = pd.DataFrame(rows)
    bad = allb[allb["impossible"]].sort_values("prefill_load", ascending=False)
    print(
        f"agg rows checked: {len(allb)}; over a bound: {len(bad)} (prefill {int((allb['prefill_load'] > 1).sum())}, "
        f"kv {int((allb['kv_load'] > 1).sum())})"
    )
    cols = ["id", "prefill_load", "kv_load", "gpus", "instances"]
    print(bad[cols].to_string(index=False, float_format=lambda x: f"{x:.2f}") if len(bad) else "(none)")
    out: dict[str, Any] = {"replicas": cov.READ_REPLICAS, "over_bound": bad["id"].tolist(), "by_results": {}}
    for path in a.results:
        t = table(path, set(bad["id"]))
        out["by_results"][path.name] = t
        errs = ", ".join(f"{x['tpot_err']:+.1%}" for x in t["over_bound"]) or "-"
        print(f"{path.name}: {t['rows']} rows, {len(t['over_bound'])} over a bound (TPOT errors {errs})")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, default=lambda x: float(np.asarray(x))))


if __name__ == "__main__":
    main()
