"""A fitted eager host time per layer, per backend, from the fit half; errors on the held-out half only.

    python benchmarks/coverage_eager_fit.py --fit eager_fit.json
    python benchmarks/coverage_eager_fit.py --report eager_fit.json --base after.json --json fitted.json

`serving_engine.eager_host_per_layer_s` has a cited default for SGLang (sgl-project/sglang PR #12160) and a
transferred one for TensorRT-LLM; vLLM V1's is 0 (no measurement found). This script asks how far the mechanism
goes when its one value per backend is learned instead: on the configurations of the fit half
(`coverage.half`, by deployment), from the InferenceX agg pairs at isl 1,024 / 8,192 with 4 clients measured with
the client's warm-up (`coverage_miss_split.table`), the 1k miss left with the term off, divided by the model's
layer count, median per backend. `--report` simulates the held-out rows of a `coverage.py --json` run (its
`per_row`, `half == "held-out"`) with those values and prints base vs fitted medians on those rows only.
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
import coverage_decompose as cd
from coverage_intercept import WARMUP_FROM
from coverage_recipes import measured_date

_ENGINE = cov.serving_engine


def _with(values: dict[str, float]) -> Any:
    def engine(row: pd.Series, protocol: str = "inferencex", sglang_first: bool = True) -> dict[str, Any]:
        out = _ENGINE(row, protocol, sglang_first)
        if out and (v := values.get(str(row["backend"]))) is not None:
            out |= {"eager_host_per_layer_s": v, "eager_host_per_moe_layer_s": 0.0}
        return out

    return engine


def fit() -> dict[str, float]:
    """Per backend: median over fit-half configurations of (1k miss with the term off) / layers, seconds."""
    rows = []
    for a, b in cd.pairs(pd.read_csv(cov.CSV), 4):
        date = measured_date(a)
        if date < WARMUP_FROM or cov.half(b) != "fit" or cov.expressible(a) is not None:
            continue
        sc = cov.scenario(a, cov._fixed_workload(1, a))
        sc["serving_engine"] = {"kind": cov.ENGINES[str(a["backend"])], "eager_host_per_layer_s": 0.0}
        sc["serving_engine"]["eager_host_per_moe_layer_s"] = 0.0
        cost = cd.pool_specs(cd.load_scenario(sc))[0].cost
        sim = cost.iteration([(cd.SHORT, 0)], 0, 0) + cost.engine.frontend_s
        rows.append({"backend": a["backend"], "per_layer": (a["silicon_ttft_ms"] / 1e3 - sim) / cost.L})
    t = pd.DataFrame(rows)
    print(t.groupby("backend")["per_layer"].agg(["median", "count"]))
    return {str(k): round(float(max(0.0, v)), 6) for k, v in t.groupby("backend")["per_layer"].median().items()}


def report(values: dict[str, float], base: Path, out: Path | None) -> None:
    per = pd.DataFrame(json.loads(base.read_text())["errors"]["per_row"])
    held = per[per["half"] == "held-out"].set_index("id")
    d = pd.read_csv(cov.CSV).set_index("id", drop=False)
    cov.serving_engine = _with(values)
    got = []
    for rid in held.index:
        ttft, tpot = cov.simulate(d.loc[rid])
        got.append({"id": rid, "ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3})
    f = pd.DataFrame(got).set_index("id")
    held["fit_ttft_err"] = f["ttft_ms"] / held["silicon_ttft_ms"] - 1
    held["fit_tpot_err"] = f["tpot_ms"] / held["silicon_tpot_ms"] - 1
    lines = [
        "| held-out group | rows | TTFT base | TTFT fitted | TPOT base | TPOT fitted |",
        "|---|---|---|---|---|---|",
    ]
    groups: list[tuple[str, pd.DataFrame]] = [("all", held)]
    for col in ("mode", "backend", "gpu"):
        groups += [(f"{col} = {k}", g) for k, g in held.groupby(col)]
    for name, g in groups:
        med = [np.median(np.abs(g[c])) for c in ("ttft_err", "fit_ttft_err", "tpot_err", "fit_tpot_err")]
        lines.append(f"| {name} | {len(g)} | " + " | ".join(f"{m:.1%}" for m in med) + " |")
    print("\n".join(lines))
    if out is not None:
        out.write_text(json.dumps({"values": values, "per_row": held.reset_index().round(4).to_dict("records")}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", type=Path, default=None, help="write the fit-half values here")
    ap.add_argument("--report", type=Path, default=None, help="values to report on the held-out half")
    ap.add_argument("--base", type=Path, default=None, help="a coverage.py --json run (its held-out rows)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.fit is not None:
        values = fit()
        args.fit.write_text(json.dumps(values, indent=2) + "\n")
        print(f"fit half, eager host per layer (s): {values}")
    if args.report is not None and args.base is not None:
        report(json.loads(args.report.read_text()), args.base, args.json)


if __name__ == "__main__":
    main()
