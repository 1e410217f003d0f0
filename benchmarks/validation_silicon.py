"""The aiconfigurator `silicon_sample.csv` closed-loop rows that servesim can express, replayed (used by
benchmarks/validation.py).

Each row is one measured configuration: `batch_size` concurrent clients (a closed loop), fixed `isl`/`osl`,
one engine (`backend`) on one GPU (`system`) at a tensor-parallel size, with the run's mean TTFT and TPOT.
A row is replayed as `workload.arrival: {kind: closed_loop, concurrency: batch_size}` with 3 x batch_size
requests (with fixed lengths the clients move in waves, so every wave sees the same latencies). Rows are kept
when the catalogue has the model and GPU, the layout is plain TP (pp = attention-dp = 1, MoE on the same TP,
no EP), the mode is `agg`, and the precision can be expressed (bf16, or a quantisation the scenario schema
offers). The CSV repeats many measurements under several ids: rows are deduplicated by configuration
(engine, GPU, model, precision, layout, isl, osl, clients, and the measured means to 1 ms / 0.1 ms, so
that a configuration re-measured by another engine version stays). The fit/report split: per engine+GPU, the
configurations sorted by (tp, isl, osl, clients) alternate — even positions are fitted, odd ones reported;
no error is reported on a fitted configuration.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calibrate.fit_run import fit_runs, fittable_paths
from calibrate.observed import ObservedRun
from calibrate.replay import Replay, compare
from sim.cluster.pools import pool_specs
from sim.config.scenario import Scenario, load_scenario
from sim.errors import ServesimError

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT.parent / "shared" / "data" / "ground-truth" / "aiconfigurator" / "silicon_sample.csv"
SYSTEMS = {
    "h100_sxm": "h100-sxm",
    "h200_sxm": "h200",
    "b200_sxm": "b200",
    "b300_sxm": "b300",
    "gb200": "gb200",
    "gb300": "gb300",
}
FALLBACK_PARAMS = [
    ("cost_model.iteration_overhead_s", 0.0, 0.02),
    ("cost_model.memory_efficiency", 0.3, 1.0),
    ("cost_model.compute_efficiency", 0.2, 1.0),
]
MAX_FIT_ROWS = 10  # rows per fit (each evaluation simulates all of them)


CONFIG = [
    "backend",
    "system",
    "model_path",
    "precision",
    "gemm_quant_mode",
    "mode",
    "tp_size",
    "pp_size",
    "attention_dp_size",
    "moe_tp_size",
    "moe_ep_size",
    "isl",
    "osl",
    "batch_size",
]


def _precision_overrides(row: pd.Series) -> list[str] | None:
    """Scenario overrides that express the row's precision, or None when the schema cannot."""
    prec = str(row["precision"])
    if prec == "bf16":
        return []
    fields = Scenario.model_fields
    if "quantization" in fields:  # the schema's quantisation section (weights / KV / MoE), when it has one
        return [f"quantization.weights={row['gemm_quant_mode']}"]
    return None


def scenario_for(row: pd.Series) -> tuple[Scenario | None, str]:
    """The row's scenario (engine preset, GPU, layout), or None and why it cannot be expressed."""
    if row["mode"] != "agg":
        return None, "disaggregated"
    if any(float(row[c]) != 1 for c in ("pp_size", "attention_dp_size", "moe_ep_size")) or float(
        row["moe_tp_size"]
    ) != float(row["tp_size"]):
        return None, "layout (pp/attention-dp/EP)"
    if row["system"] not in SYSTEMS:
        return None, "GPU"
    prec = _precision_overrides(row)
    if prec is None:
        return None, f"precision {row['precision']}"
    c = int(row["batch_size"])
    data: dict[str, Any] = {
        "name": str(row["id"]),
        "model": str(row["model_path"]),
        "hardware": SYSTEMS[row["system"]],
        "workload": {
            "num_requests": 3 * c,
            "arrival": {"kind": "closed_loop", "concurrency": c},
            "lengths": {"kind": "fixed", "prompt": int(row["isl"]), "output": int(row["osl"])},
        },
        "cluster": {"tp": int(row["tp_size"])},
        # one token budget shared by decodes and chunked prefills (vLLM V1; SGLang chunks prefills alike)
        "scheduler": {"kind": "vllm", "max_num_seqs": max(256, c), "max_num_batched_tokens": 8192},
    }
    overrides = list(prec) + engine_preset(str(row["backend"]))
    try:
        return load_scenario(data, overrides), ""
    except ServesimError as e:
        reason = str(e).split(":")[1].strip() if ":" in str(e) else str(e)
        return None, f"schema ({reason[:40]})"


def engine_preset(backend: str) -> list[str]:
    """Overrides choosing the engine preset of `backend` when the schema has engine presets."""
    kinds = {"vllm": "vllm-v1", "sglang": "sglang", "trtllm": "trtllm"}
    if "serving_engine" in Scenario.model_fields and backend in kinds:
        return [f"serving_engine.kind={kinds[backend]}"]
    return []


def observed_row(row: pd.Series, sc: Scenario) -> ObservedRun:
    """The row as a means-only observed run: every request carries the run's mean TTFT and TPOT."""
    n = sc.workload.num_requests or 1
    ttft, tpot, osl = row["silicon_ttft_ms"] / 1e3, row["silicon_tpot_ms"] / 1e3, int(row["osl"])
    return ObservedRun(
        f"{CSV.name}:{row['id']}",
        "silicon",
        np.full(n, int(row["isl"])),
        np.full(n, osl),
        np.full(n, ttft),
        np.full(n, ttft + tpot * (osl - 1)),
        concurrency=int(row["batch_size"]),
        means_only=True,
        meta={"backend": row["backend"], "system": row["system"], "model": row["model_path"]},
    )


def _replay(run: ObservedRun, sc: Scenario) -> dict[str, Any]:
    rp = Replay(run, sc)
    try:
        simd = rp.simulate(rp.scenario())
    finally:
        rp.close()
    c = compare(run, simd)
    return {m: c[m]["mean"] for m in ("ttft", "tpot", "e2e")} | {"completed": simd.completed, "requests": len(run)}


def silicon(quick: bool = False, out_dir: Path | None = None) -> dict[str, Any]:
    df = pd.read_csv(CSV)
    df = df[df["mode"] == "agg"].assign(  # the same measurement, re-listed (rounded) under other ids/versions
        ttft_key=lambda d: d["silicon_ttft_ms"].round(0), tpot_key=lambda d: d["silicon_tpot_ms"].round(1)
    )
    df = df.drop_duplicates(subset=[*CONFIG, "ttft_key", "tpot_key"], keep="first")
    df = df.sort_values(["backend", "system", "tp_size", "isl", "osl", "batch_size"], kind="stable")
    kept, skipped = [], {"disaggregated (not replayed here)": int((pd.read_csv(CSV)["mode"] != "agg").sum())}
    for _, row in df.iterrows():
        sc, why = scenario_for(row)
        if sc is not None:
            try:
                pool_specs(sc)  # the listed layout must hold the model (this harness maps no EP/attention DP)
            except ServesimError:
                sc, why = None, "does not fit as this harness maps it (EP/attention-DP rows: see COVERAGE.md)"
        if sc is None:
            skipped[why] = skipped.get(why, 0) + 1
        else:
            kept.append((row, sc))
    groups: dict[str, list[tuple[pd.Series, Scenario]]] = {}
    for row, sc in kept:
        groups.setdefault(f"{row['backend']} {row['system']}", []).append((row, sc))
    out: dict[str, Any] = {"skipped": skipped, "groups": {}}
    for name, rows in sorted(groups.items()):
        if quick:
            rows = rows[:8]
        presets = {str(r["id"]): _replay(observed_row(r, sc), sc) for r, sc in rows}
        fit = rows[0::2][:MAX_FIT_ROWS]  # alternate configurations: even positions fitted ...
        report = rows[1::2]  # ... odd ones reported (never a fitted one)
        g: dict[str, Any] = {"presets": presets, "fit_rows": [str(r["id"]) for r, _ in fit], "fitted": {}}
        if fit and report:
            params = None if fittable_paths(fit[0][1]) else FALLBACK_PARAMS
            res = fit_runs([(observed_row(r, sc), sc) for r, sc in fit], params, max_evals=12 if quick else 40)
            g["params"] = res.values
            for r, sc in report:
                applied = load_scenario(sc, [f"{k}={v!r}" for k, v in res.values.items()])
                g["fitted"][str(r["id"])] = _replay(observed_row(r, applied), applied)
        out["groups"][name] = g
    return out


def _med(rows: dict[str, Any], m: str) -> float:
    v = [abs(r[m]["error_pct"]) for r in rows.values() if math.isfinite(r[m]["error_pct"])]
    return statistics.median(v) if v else math.nan


def silicon_tables(res: dict[str, Any]) -> str:
    lines = [
        "**aiconfigurator silicon rows (closed loop)**",
        "",
        "| engine + GPU | configs | presets: TTFT | TPOT | E2E | fitted on (even) | reported (odd): TTFT | "
        "TPOT | E2E |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, g in res["groups"].items():
        p, f = g["presets"], g["fitted"]
        fit_cols = f"{_med(f, 'ttft'):.1f}% | {_med(f, 'tpot'):.1f}% | {_med(f, 'e2e'):.1f}%" if f else "- | - | -"
        lines.append(
            f"| {name} | {len(p)} | {_med(p, 'ttft'):.1f}% | {_med(p, 'tpot'):.1f}% | {_med(p, 'e2e'):.1f}% | "
            f"{len(g['fit_rows'])} | {fit_cols} |"
        )
    lines.append("")
    lines.append(
        "median |error| of the mean per row; rows not expressible: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(res["skipped"].items()))
    )
    return "\n".join(lines)
