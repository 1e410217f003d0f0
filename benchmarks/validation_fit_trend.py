"""What the silicon cross-fit's rows need, per subgroup: the signed TPOT error against the batch (clients), before and
after a fit, and the cost model's decode step under both readings of the routed experts.

    python benchmarks/validation_fit_trend.py CROSS_FIT_JSON [--steps] [--json OUT]

For each subgroup of a `--silicon-cross-fit` JSON (its 8 replayed rows: fitted and reported), a least-squares line of
the signed TPOT error (%) in log(clients): its slope (points per e-fold of clients), the correlation, and the spread
left about the line, for the presets and for the fit (`in_sample` on the fitted rows, `fitted` on the reported).
A batch-dependent term the fit lacks shows as a slope the fit leaves; a per-step fixed time as an error that falls
towards 0 with the batch; noise as spread with no trend. `--steps`: the same line for the cost model's decode step
alone (`breakdown` at the row's clients and mean context, no replay) against the measured TPOT, under the preset's
`per_expert` reading and `one_launch` (aggregated MoE subgroups; VALIDATION.md, branch s13-fit).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import coverage  # noqa: E402
from benchmarks.validation_silicon import CSV, scenario_for  # noqa: E402
from sim.cluster.pools import build_cost_model  # noqa: E402
from sim.config.scenario import load_scenario  # noqa: E402


def line(x: list[float], y: list[float]) -> dict[str, float]:
    """Slope of y in x, their correlation, and the standard deviation of y about the line."""
    a, b = np.asarray(x), np.asarray(y)
    if len(set(x)) < 2 or not np.all(np.isfinite(b)):
        return {"slope": math.nan, "corr": math.nan, "sd_about": math.nan, "median": math.nan}
    fit = np.polyfit(a, b, 1)
    resid = b - np.polyval(fit, a)
    return {"slope": float(fit[0]), "corr": float(np.corrcoef(a, b)[0, 1]), "sd_about": float(np.std(resid)),
            "median": float(np.median(b))}  # fmt: skip


def step_errors(row: pd.Series, readings: tuple[str, ...]) -> list[float] | None:
    """The cost model's decode step at the row's clients and mean context against its TPOT (%), per reading; None
    where the row is not a MoE model servesim maps."""
    sc, _ = scenario_for(row)
    if sc is None or not sc.base_model_spec.num_moe_layers:
        return None
    c, isl, osl = coverage.concurrency(row), int(row["isl"]), int(row["osl"])
    out = []
    for r in readings:
        cm = build_cost_model(load_scenario(sc, [f"serving_engine.moe_grouped_gemm={r}"]))
        out.append((sum(cm.breakdown([], c, c * (isl + osl // 2)).values()) * 1e3 / row["silicon_tpot_ms"] - 1) * 100)
    return out


def _row(df: pd.DataFrame, rid: str) -> pd.Series:
    row = df.loc[rid].copy()
    row["id"] = rid
    return row


def trends(res: dict[str, Any], steps: bool) -> dict[str, Any]:
    df = pd.read_csv(CSV).drop_duplicates("id").set_index("id")
    out: dict[str, Any] = {}
    for name, g in res["subgroups"].items():
        if "fitted" not in g:
            continue
        ids = g["fit_ids"] + g["report_ids"]
        logc = [math.log(max(1, coverage.concurrency(df.loc[i]))) for i in ids]
        pre = [e["tpot"] for e in g["in_sample"]["before"] + g["presets"]]
        post = [e["tpot"] for e in g["in_sample"]["after"] + g["fitted"]]
        out[name] = {"presets": line(logc, pre), "fit": line(logc, post)}
        if steps and "disagg" not in name:
            rows = [(x, step_errors(_row(df, i), ("per_expert", "one_launch"))) for x, i in zip(logc, ids, strict=True)]
            rows = [(x, e) for x, e in rows if e is not None]
            if len(rows) >= 6:
                for k, r in enumerate(("per_expert", "one_launch")):
                    out[name][f"step_{r}"] = line([x for x, _ in rows], [e[k] for _, e in rows])
    return out


def summary(t: dict[str, Any]) -> list[str]:
    lines = []
    for key in ("presets", "fit", "step_per_expert", "step_one_launch"):
        v = [s[key] for s in t.values() if key in s and math.isfinite(s[key]["corr"])]
        if v:
            med = {m: statistics.median(x[m] for x in v) for m in ("slope", "corr", "sd_about")}
            hi, lo = sum(x["corr"] > 0.7 for x in v), sum(x["corr"] < -0.7 for x in v)
            lines.append(f"{key}: {len(v)} subgroups, median slope {med['slope']:+.1f} points per e-fold of clients, "
                         f"corr {med['corr']:+.2f}, sd about the line {med['sd_about']:.1f}; corr > 0.7 in {hi}, "
                         f"< -0.7 in {lo}")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cross_fit", type=Path)
    ap.add_argument("--steps", action="store_true", help="the cost model's decode step under both MoE readings")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    t = trends(json.loads(args.cross_fit.read_text())["silicon_cross_fit"], args.steps)
    for name, s in t.items():
        cells = " | ".join(f"{k} {v['slope']:+.1f} ({v['corr']:+.2f}, sd {v['sd_about']:.1f})" for k, v in s.items())
        print(f"{name}: {cells}")
    print("\n".join(summary(t)))
    if args.json:
        args.json.write_text(json.dumps(t, indent=1) + "\n")


if __name__ == "__main__":
    main()
