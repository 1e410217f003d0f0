"""Which agg silicon rows measured something their stated workload cannot produce: physical bounds, no fitting.

    python benchmarks/tpot_bounds.py [--results benchmarks/coverage_results.json ...] [--json out.json]

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
for the load, osl at x for E2E). A row over either bound measured a different workload than the row states -
shared prompt prefixes served from a prefix cache would explain both (no source records the prompts), a
truncated output another - and is reported apart ("TPOT by group (branch s8-tpot)", COVERAGE.md).
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
from coverage_layout import _layout

from hwprofiles import catalog
from sim.costmodel.layout import Layout
from sim.costmodel.quant import Quantization


def bounds(row: pd.Series) -> dict[str, float] | None:
    """The row's prefill and KV loads implied by its own measurement (see the module docstring); None for rows
    these bounds do not cover (disagg pools)."""
    if row["mode"] != "agg":
        return None
    model, gpu = catalog.model(row["model_path"]), catalog.gpu(row["system"])
    q = cov.quantization(row, gpu)
    gpus = Layout(**_layout(row, moe=model.is_moe)).gpus
    c, isl, osl = cov.concurrency(row), float(row["isl"]), float(row["osl"])
    ttft, tpot = float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3
    low = cov.RANGE_RATIO if cov.source(row) == "inferencex" else 1.0
    e2e = ttft + (osl - 1.0) * tpot
    rate = c / e2e  # requests a second (Little's law on the closed loop)
    peak = gpu.peak_flops(q["activations"]) or gpu.bf16_flops
    prefill = rate * low * isl * 2.0 * model.active_params / (gpus * peak)
    decoders = max(0.0, c - rate * ttft)  # requests past their first token
    kv_bits = min(8.0, Quantization(**q).kv_bits)  # the smallest cache any of the three engines runs: a lower bound
    tokens = low * isl + 0.5 * low * osl
    free = gpus * gpu.memory_bytes - model.weight_bytes(1, Quantization(**q).weight_bits)
    kv = decoders * tokens * model.kv_bytes_per_token(1, kv_bits, context=int(tokens)) / max(free, 1.0)
    return {"prefill_load": prefill, "kv_load": kv, "gpus": float(gpus), "rate": rate}


def impossible(b: dict[str, float] | None) -> bool:
    return b is not None and (b["prefill_load"] > 1.0 or b["kv_load"] > 1.0)


def table(results: Path, df: pd.DataFrame) -> dict[str, Any]:
    """Median |TPOT| error of a results file's rows, split by the bounds (the rows' own errors, as simulated)."""
    raw = json.loads(results.read_text())
    res = pd.DataFrame(raw["errors"]["per_row"] if isinstance(raw, dict) else raw)
    flags = {i: impossible(bounds(df.loc[i])) for i in res["id"]}
    res["impossible"] = res["id"].map(flags)
    err = res["tpot_err"].abs()
    out: dict[str, Any] = {"rows": len(res), "median_abs_tpot": float(err.median())}
    for name, part in (("within", ~res["impossible"]), ("impossible", res["impossible"])):
        out[name] = {"rows": int(part.sum()), "median_abs_tpot": float(err[part].median()) if part.any() else None}
    out["impossible_ids"] = sorted(res.loc[res["impossible"], "id"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--results",
        type=Path,
        nargs="*",
        default=[Path(__file__).parent / "coverage_results.json"],
        help="coverage.py / tpot_groups.py results whose rows to split",
    )
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
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
    print(bad[["id", "prefill_load", "kv_load", "gpus"]].to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    out: dict[str, Any] = {"over_bound": bad["id"].tolist(), "by_results": {}}
    for path in a.results:
        t = table(path, df)
        out["by_results"][path.name] = t
        print(
            f"{path.name}: all {t['rows']} rows {t['median_abs_tpot']:.1%}; within bounds {t['within']['rows']} "
            f"rows {t['within']['median_abs_tpot']:.1%}; over a bound {t['impossible']['rows']} rows "
            + (f"{t['impossible']['median_abs_tpot']:.1%}" if t["impossible"]["rows"] else "-")
        )
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, default=lambda x: float(np.asarray(x))))


if __name__ == "__main__":
    main()
