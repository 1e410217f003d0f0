"""The fidelity report: how close servesim's cost model and simulation come to measured reality.

Three levels, each against measurements the model did not see:

1. Operators, on Vidur's measured A100/H100 tables: efficiency curves learned from some models only
   (default Llama-2-7B and Llama-2-70B) predict every operator row of the held-out models (Llama-3-8B,
   CodeLlama-34B as the headline; InternLM-20B, Qwen-72B, phi-2 as extra). Baseline: the spec-sheet
   roofline (constant efficiencies) on the same rows.
2. Iterations, on this CPU: the harness measures the operators of a small transformer, `calibrate fit`
   fits engine overheads on synthetic batches, then a real continuous-batching loop (`calibrate.realrun`)
   serves a scaled Azure trace; every real iteration is priced by the cost model from its batch.
3. Requests: the same workload simulated by servesim (`sim.run`, fcfs, the table cost model + profile)
   against the real run's per-request TTFT, TPOT and E2E.

Level 1 and the report are here; levels 2 and 3 are in `calibrate.cpu_fidelity`.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calibrate.cpu_fidelity import Log, cpu_fidelity
from hwprofiles import catalog
from hwprofiles.efficiency import Efficiency
from hwprofiles.tables import GEMM_OPS, TOKEN_OPS, shipped_tables, spec_from_shape
from sim.costmodel.models import RooflineCost, RooflineCostConfig

TRAIN = ("llama-2-7b", "llama-2-70b")
HEADLINE = ("llama-3-8b", "codellama-34b")


# -- 1. operators ---------------------------------------------------------------------------------------------
def operator_rows(gpu_name: str, train: tuple[str, ...] = TRAIN) -> pd.DataFrame:
    """Every operator row of every table model not in `train`, with curve and spec-sheet predictions."""
    tables = shipped_tables(gpu_name)
    if tables is None:
        raise ValueError(f"no measured tables shipped for {gpu_name}")
    gpu = catalog.gpu(gpu_name)
    eff = Efficiency(tables.subset(list(train)), gpu.bf16_flops, gpu.mem_bw)
    test = tables.subset(list(train), exclude=True).operators
    out = []
    for (model, tp), rows in test.groupby(["model", "tp"]):
        spec = spec_from_shape(str(model), rows.iloc[0], dtype_bytes=tables.dtype_bytes)
        curves = RooflineCost(RooflineCostConfig(), spec, gpu, int(tp), fallback=eff)
        const = RooflineCost(RooflineCostConfig(efficiency="constant"), spec, gpu, int(tp))
        for op in TOKEN_OPS:
            if op not in rows or rows[op].isna().all():
                continue
            sub = rows[["num_tokens", op]].dropna()
            m = sub["num_tokens"].to_numpy(np.int64)
            out.append(
                pd.DataFrame(
                    {
                        "gpu": gpu_name,
                        "model": model,
                        "tp": int(tp),
                        "op": op,
                        "gemm": op in GEMM_OPS,
                        "num_tokens": m,
                        "measured_ms": sub[op].to_numpy(np.float64),
                        "curves_ms": [curves.operator(op, int(x)) * 1e3 for x in m],
                        "spec_ms": [const.operator(op, int(x)) * 1e3 for x in m],
                    }
                )
            )
    df = pd.concat(out, ignore_index=True)
    df["curves_err"] = df["curves_ms"] / df["measured_ms"] - 1
    df["spec_err"] = df["spec_ms"] / df["measured_ms"] - 1
    return df


def summarize_operators(df: pd.DataFrame) -> pd.DataFrame:
    """MAPE (%) per GPU and held-out model: GEMMs, all operators; learned curves vs spec sheet."""

    def mape(s: pd.Series) -> float:
        return float(np.mean(np.abs(s)) * 100)

    rows = []
    for (gpu, model), g in df.groupby(["gpu", "model"]):
        gm = g[g["gemm"]]
        rows.append(
            {
                "gpu": gpu,
                "model": model,
                "rows": len(g),
                "gemm_mape": mape(gm["curves_err"]),
                "all_mape": mape(g["curves_err"]),
                "gemm_p90_ape": float(np.quantile(np.abs(gm["curves_err"]), 0.9) * 100),
                "spec_gemm_mape": mape(gm["spec_err"]),
                "spec_all_mape": mape(g["spec_err"]),
                "headline": model in HEADLINE,
            }
        )
    return pd.DataFrame(rows)


def run_report(
    out: Path,
    *,
    cpu: bool = True,
    quick: bool = False,
    num_requests: int = 150,
    time_scale: float = 0.5,
    log: Log = print,
) -> dict[str, Any]:
    """Run every level, save `report.json`, `report.md` and the raw rows under `out`; return the report."""
    out.mkdir(parents=True, exist_ok=True)
    log("operators: held-out models on Vidur's A100/H100 tables")
    ops = pd.concat([operator_rows(g) for g in ("a100-80g", "h100-sxm")], ignore_index=True)
    ops.to_csv(out / "operator_rows.csv.gz", index=False, float_format="%.5g")
    summ = summarize_operators(ops)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "operators": {
            "train": list(TRAIN),
            "by_model": summ.to_dict(orient="records"),
            "headline": _headline(ops),
        },
    }
    if cpu:
        report["cpu"] = cpu_fidelity(
            out / "cpu", num_requests=num_requests, time_scale=time_scale, quick=quick, log=log
        )
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (out / "report.md").write_text(to_markdown(report))
    return report


def _headline(ops: pd.DataFrame) -> dict[str, Any]:
    h = ops[ops["model"].isin(HEADLINE)]
    res = {}
    for gpu, g in h.groupby("gpu"):
        gm = g[g["gemm"]]
        res[str(gpu)] = {
            "models": sorted(set(g["model"])),
            "gemm_mape": float(np.mean(np.abs(gm["curves_err"])) * 100),
            "all_mape": float(np.mean(np.abs(g["curves_err"])) * 100),
            "spec_gemm_mape": float(np.mean(np.abs(gm["spec_err"])) * 100),
            "spec_all_mape": float(np.mean(np.abs(g["spec_err"])) * 100),
        }
    return res


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (what `servesim fidelity` prints and `benchmarks/FIDELITY.md` quotes)."""
    lines = [f"# servesim fidelity report ({report['date']})", ""]
    op = report["operators"]
    lines += [
        f"## Operators: held-out models (curves learned from {', '.join(op['train'])} only)",
        "",
        "| GPU | model | rows | GEMM MAPE | all-op MAPE | GEMM p90 APE | spec GEMM MAPE | spec all-op MAPE |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in op["by_model"]:
        star = " (headline)" if r["headline"] else ""
        lines.append(
            f"| {r['gpu']} | {r['model']}{star} | {r['rows']} | {r['gemm_mape']:.1f}% | {r['all_mape']:.1f}% | "
            f"{r['gemm_p90_ape']:.1f}% | {r['spec_gemm_mape']:.1f}% | {r['spec_all_mape']:.1f}% |"
        )
    lines += ["", "Headline (Llama-3-8B + CodeLlama-34B pooled):", ""]
    for gpu, h in op["headline"].items():
        lines.append(
            f"- {gpu} ({', '.join(h['models'])}): GEMM MAPE {h['gemm_mape']:.1f}%, all operators {h['all_mape']:.1f}% "
            f"(spec-sheet roofline: {h['spec_gemm_mape']:.1f}% / {h['spec_all_mape']:.1f}%)"
        )
    cpu = report.get("cpu")
    if cpu:
        w = cpu["workload"]
        lines += [
            "",
            f"## CPU real run: {cpu['model']['name']} on {cpu['machine']['cpu']} "
            f"(1 thread, torch {cpu['machine']['torch']})",
            "",
            f"{w['num_requests']} requests of azure-conv (prompts {w['prompt_scale']}, outputs {w['output_scale']}, "
            f"arrivals x{w['time_scale']}), fcfs max_num_seqs {w['max_num_seqs']}, {w['iterations']} iterations, "
            f"{w['real_wall_s']:.1f} s on the {cpu['machine']['clock']} clock, busy {w['busy_fraction']:.0%}. "
            f"Machine load average (1 min) {cpu['machine']['load_average_start'][0]:.1f} at the start, "
            f"{cpu['machine']['load_average_end'][0]:.1f} at the end, on {cpu['machine']['cores']} cores.",
            "",
            f"Profile fit on {cpu['fit']['rows']} synthetic batches: MAPE {cpu['fit']['mape_before_pct']:.1f}% -> "
            f"{cpu['fit']['mape_pct']:.1f}% (max {cpu['fit']['max_ape_pct']:.1f}%; batches timed before and after "
            f"the real run, median ratio after/before {cpu['fit']['drift_after_over_before']:.2f}); parameters "
            + ", ".join(f"{k}={v:.3g}" for k, v in cpu["fit"]["params"].items()),
            "",
            "| cost model | median abs iter. error | mean | p90 | median signed | prefill | decode | total busy "
            "| undisturbed only |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, e in cpu["iteration"].items():
            lines.append(
                f"| {name} | {e['median_abs_err_pct']:.1f}% | {e['mean_abs_err_pct']:.1f}% | "
                f"{e['p90_abs_err_pct']:.1f}% | "
                f"{e['median_signed_err_pct']:+.1f}% | {e['prefill_median_abs_err_pct']:.1f}% | "
                f"{e['decode_median_abs_err_pct']:.1f}% | {e['total_time_err_pct']:+.1f}% | "
                f"{e['undisturbed_median_abs_err_pct']:.1f}% ({e['undisturbed_fraction']:.0%}) |"
            )
        lines += [
            "",
            "| cost model | metric | real p50 | sim p50 | p50 error | real p90 | sim p90 | p90 error | per-request |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in cpu["requests"].items():
            for m, lab in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2el_s", "E2E")):
                x = r[m]
                lines.append(
                    f"| {name} | {lab} | {x['real_p50_ms']:.1f} ms | {x['sim_p50_ms']:.1f} ms | "
                    f"{x['p50_err_pct']:+.1f}% | "
                    f"{x['real_p90_ms']:.1f} ms | {x['sim_p90_ms']:.1f} ms | {x['p90_err_pct']:+.1f}% | "
                    f"{x['median_abs_request_err_pct']:.1f}% |"
                )
    return "\n".join(lines) + "\n"
