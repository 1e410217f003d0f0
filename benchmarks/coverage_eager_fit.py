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

`--fit-moe INTERCEPT_CSV --backend trtllm` (branch s8-ttft) learns `eager_host_per_moe_layer_s` instead, for one
backend whose preset charges no host term (TensorRT-LLM: no source for its eager context phase): from a
`coverage_intercept.py --csv` run (every InferenceX agg row at <= 16 clients, measured - simulated TTFT), the rows
with the client's warm-up, of MoE models, in fit-half configurations: per configuration the median miss per MoE
layer, then the median over configurations. Its `--report` is on the held-out half only, as above.
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


def _with(values: dict[str, Any]) -> Any:
    """The coverage engine with a backend's learned value: a float is a per-layer value (in place of both host
    terms), a dict the serving-engine fields to set."""

    def engine(row: pd.Series, protocol: str = "inferencex", sglang_first: bool = True) -> dict[str, Any]:
        out = _ENGINE(row, protocol, sglang_first)
        if out and (v := values.get(str(row["backend"]))) is not None:
            out |= v if isinstance(v, dict) else {"eager_host_per_layer_s": v, "eager_host_per_moe_layer_s": 0.0}
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


def fit_moe(intercept: Path, backend: str) -> dict[str, dict[str, float]]:
    """`{backend: {"eager_host_per_moe_layer_s": s}}`: the fit half's median over configurations of each one's
    median low-load miss per MoE layer (warm-up rows of MoE models only; see the module docstring)."""
    silicon = pd.read_csv(cov.CSV).set_index("id", drop=False)
    miss = pd.read_csv(intercept)
    miss = miss[(miss["backend"] == backend) & miss["warmup"].astype(bool) & (miss["half"] == "fit")]
    rows = []
    moe_layers: dict[str, int] = {}
    for _, m in miss.iterrows():
        r = silicon.loc[m["id"]]
        name = str(r["model_path"])
        if name not in moe_layers:
            moe_layers[name] = cd.load_scenario(
                cov.scenario(r, cov._fixed_workload(1, r))
            ).base_model_spec.num_moe_layers
        if moe_layers[name]:
            key = "|".join(str(r[k]) for k in cov.CONFIG_KEYS)
            rows.append({"config": key, "per_moe_layer_s": m["miss_ms"] / 1e3 / moe_layers[name]})
    t = pd.DataFrame(rows)
    per_config = t.groupby("config")["per_moe_layer_s"].median()
    print(f"{backend}: {len(t)} rows, {len(per_config)} fit-half configurations")
    print((per_config * 1e3).round(3).to_string())
    return {backend: {"eager_host_per_moe_layer_s": round(float(max(0.0, per_config.median())), 6)}}


def oos(values: dict[str, Any], ids: Path, backend: str, out: Path | None) -> None:
    """The rows of a `tpot_groups.py --json` file (outside coverage.py's draw) of `backend`, in held-out
    configurations only, simulated at coverage.py's protocol as the tree prices them and with the learned values:
    medians off -> on (coverage_term_oos.summary's table)."""
    from coverage_term_oos import summary

    d = pd.read_csv(cov.CSV).set_index("id", drop=False)
    picked = [r["id"] for r in json.loads(ids.read_text()) if r["backend"] == backend]
    picked = [rid for rid in picked if cov.half(d.loc[rid]) == "held-out"]
    rows = []
    for rid in picked:
        r = d.loc[rid]
        got: dict[str, Any] = {"id": rid, "half": "held-out", "gpu": r["system"], "mode": r["mode"]}
        for side, engine in (("off", _ENGINE), ("on", _with(values))):
            cov.serving_engine = engine
            ttft, tpot = cov.simulate(r)
            got[f"ttft_{side}"] = ttft * 1e3 / r["silicon_ttft_ms"] - 1
            got[f"tpot_{side}"] = tpot * 1e3 / r["silicon_tpot_ms"] - 1
        cov.serving_engine = _ENGINE
        rows.append(got)
    t = pd.DataFrame(rows)
    print(summary(t))
    for mode, g in t.groupby("mode"):
        print(f"mode = {mode}:")
        print(summary(g).splitlines()[2])
    if out is not None:
        out.write_text(t.round(4).to_json(orient="records"))


def report(values: dict[str, Any], base: Path, out: Path | None) -> None:
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
    ap.add_argument("--fit-moe", type=Path, default=None, help="a coverage_intercept.py --csv: learn per MoE layer")
    ap.add_argument("--backend", default="trtllm", help="with --fit-moe: the backend to learn it for")
    ap.add_argument("--out", type=Path, default=None, help="with --fit-moe: write the value here")
    ap.add_argument("--oos", type=Path, default=None, help="with --report: a tpot_groups.py --json file's rows instead")
    ap.add_argument("--report", type=Path, default=None, help="values to report on the held-out half")
    ap.add_argument("--base", type=Path, default=None, help="a coverage.py --json run (its held-out rows)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.fit is not None:
        values = fit()
        args.fit.write_text(json.dumps(values, indent=2) + "\n")
        print(f"fit half, eager host per layer (s): {values}")
    if args.fit_moe is not None:
        moe = fit_moe(args.fit_moe, args.backend)
        print(f"fit half, eager host per MoE layer (s): {moe}")
        if args.out is not None:
            args.out.write_text(json.dumps(moe, indent=2) + "\n")
    if args.report is not None and args.oos is not None:
        oos(json.loads(args.report.read_text()), args.oos, args.backend, args.json)
    elif args.report is not None and args.base is not None:
        report(json.loads(args.report.read_text()), args.base, args.json)


if __name__ == "__main__":
    main()
