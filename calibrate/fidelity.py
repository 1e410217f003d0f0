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
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hwprofiles import catalog
from hwprofiles.efficiency import Efficiency
from hwprofiles.specs import GPUSpec, ModelSpec
from hwprofiles.tables import GEMM_OPS, TOKEN_OPS, shipped_tables, spec_from_shape
from sim.costmodel.models import RooflineCost, RooflineCostConfig

TRAIN = ("llama-2-7b", "llama-2-70b")
HEADLINE = ("llama-3-8b", "codellama-34b")
Log = Callable[[str], None]


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


# -- 2 and 3. the CPU real run ------------------------------------------------------------------------------
CALIBRATION_ROWS = [
    *((p, b, 0) for p in (16, 64, 256, 1024) for b in (1, 2, 4) if p * b <= 2048),
    *((0, b, c) for b in (1, 2, 4, 8, 16, 32) for c in (32, 128, 512)),
]


def cpu_hardware(device_yaml: Path) -> GPUSpec:
    """This CPU as an inline GPUSpec (from the harness's estimate), with memory enough for any KV cache."""
    spec = yaml.safe_load(device_yaml.read_text())
    return GPUSpec.model_validate(spec)


def price_iterations(cost: Any, it: pd.DataFrame) -> np.ndarray:
    """Predicted seconds of each real iteration from its batch (whole prompts, or one decode step)."""
    out = np.empty(len(it))
    for i, row in enumerate(it.itertuples(index=False)):
        if row.prefill_seqs:
            lens = [int(x) for x in str(row.prefill_lens).split(";")]
            out[i] = cost.iteration([(q, 0) for q in lens], 0, 0)
        else:
            out[i] = float(cost.decode_run(int(row.decode_seqs), np.array([float(row.decode_ctx)]))[0])
    return out


def simulate(
    workload: pd.DataFrame,
    hardware: GPUSpec,
    cost_model: dict[str, Any],
    max_num_seqs: int,
    max_tokens: int,
    model: ModelSpec | None = None,
) -> pd.DataFrame:
    """servesim on the same arrivals and lengths (a csv trace in a temp dir), fcfs, one instance."""
    import sim
    from calibrate.realrun import CPU_MODEL

    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.csv"
        workload[["arrival_s", "prompt_tokens", "output_tokens"]].to_csv(trace, index=False, float_format="%.9f")
        sc = {
            "name": "cpu-realrun",
            "model": (model or CPU_MODEL).model_dump(exclude={"num_params"}),
            "hardware": hardware.model_dump(),
            "workload": {"arrival": {"kind": "trace", "path": str(trace), "format": "csv"}},
            "scheduler": {"kind": "fcfs", "max_num_seqs": max_num_seqs, "max_num_batched_tokens": max_tokens},
            "kv_cache": {"gpu_memory_utilization": 0.9, "reserve_gb": 0.0},
            "cost_model": cost_model,
        }
        return sim.run(sim.load_scenario(sc)).requests


def request_errors(real: pd.DataFrame, simulated: pd.DataFrame) -> dict[str, Any]:
    """p50/p90 of TTFT, TPOT, E2E real vs simulated, and the median per-request error."""
    out: dict[str, Any] = {}
    for m in ("ttft_s", "tpot_s", "e2el_s"):
        r = real[m].to_numpy(np.float64)
        s = simulated[m].to_numpy(np.float64)
        ok = np.isfinite(r) & np.isfinite(s) & (r > 0)
        out[m] = {
            "real_p50_ms": float(np.median(r[ok]) * 1e3),
            "sim_p50_ms": float(np.median(s[ok]) * 1e3),
            "p50_err_pct": float((np.median(s[ok]) / np.median(r[ok]) - 1) * 100),
            "real_p90_ms": float(np.quantile(r[ok], 0.9) * 1e3),
            "sim_p90_ms": float(np.quantile(s[ok], 0.9) * 1e3),
            "p90_err_pct": float((np.quantile(s[ok], 0.9) / np.quantile(r[ok], 0.9) - 1) * 100),
            "median_abs_request_err_pct": float(np.median(np.abs(s[ok] / r[ok] - 1)) * 100),
        }
    return out


def cpu_fidelity(
    work: Path,
    *,
    num_requests: int = 150,
    time_scale: float = 0.5,
    max_num_seqs: int = 32,
    max_num_batched_tokens: int = 2048,
    quick: bool = False,
    seed: int = 0,
    clock: str = "thread",
    log: Log = print,
) -> dict[str, Any]:
    """Measure -> fit -> serve for real -> simulate, on this CPU; returns the report's CPU section."""
    from calibrate import harness
    from calibrate.fit import fit_profile, write_profile
    from calibrate.kernels import torch_mod
    from calibrate.realrun import CPU_MODEL, Engine, measure_iterations, scaled_trace, serve
    from sim.core.registry import COST_MODELS
    from sim.costmodel.models import build_physical

    torch = torch_mod()
    torch.set_num_threads(1)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    load0 = list(os.getloadavg())
    plan = harness.Plan(max_tokens=2048, max_batch=32, max_context=1024, reps=15, clock=clock)
    if quick:
        plan = harness.Plan(max_tokens=512, max_batch=16, max_context=512, reps=5, warmup=2, clock=clock)
    tables = work / "tables"
    log(f"1/4 measuring {CPU_MODEL.name}'s operators on this CPU (1 thread) -> {tables}")
    harness.measure(CPU_MODEL, tables, device="cpu", plan=plan, threads=1, seed=seed)
    hw = cpu_hardware(tables / "device.yaml")
    engine = Engine(CPU_MODEL, seed=seed)
    log("2/4 timing the serving engine on synthetic batches")
    calib_rows = CALIBRATION_ROWS if not quick else [r for r in CALIBRATION_ROWS if r[0] <= 256 and r[1] <= 16]
    reps = 3 if quick else 7
    before = measure_iterations(calib_rows, engine=engine, reps=reps, seed=seed, clock=clock)
    log(f"3/4 serving {num_requests} requests of the scaled azure-conv trace for real")
    workload = scaled_trace(num_requests=num_requests, time_scale=time_scale)
    real = serve(
        workload,
        engine=engine,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        seed=seed,
        clock=clock,
    )
    # the synthetic batches again: bracketing the real run averages out a machine whose load drifts
    after = measure_iterations(calib_rows, engine=engine, reps=reps, seed=seed + 1, clock=clock)
    meas = before.copy()
    meas["time_ms"] = np.sqrt(before["time_ms"] * after["time_ms"])
    drift = float(np.median(after["time_ms"] / before["time_ms"]))
    meas.to_csv(work / "iterations.csv", index=False, float_format="%.5g")
    base = {"kind": "table", "tables": str(tables)}
    profile, fit_rows, _ = fit_profile(meas, CPU_MODEL, hw, 1, base=base, source="iterations.csv")
    write_profile(profile, work / "profile.yaml")
    fit_rows.to_csv(work / "fit_rows.csv", index=False, float_format="%.5g")
    real.requests.to_csv(work / "real_requests.csv", index=False, float_format="%.6g")
    log(f"4/4 fitted a profile; pricing {len(real.iterations)} real iterations and simulating the workload")
    variants = {
        "table": {"kind": "table", "tables": str(tables), "iteration_overhead_s": 0.0},
        "table+profile": {"kind": "table", "tables": str(tables), "profile": str(work / "profile.yaml")},
        "roofline curves+profile": {"kind": "roofline", "tables": str(tables), "profile": str(work / "profile.yaml")},
    }
    it = real.iterations.copy()
    iteration: dict[str, Any] = {}
    for name, cm in variants.items():
        cfg = COST_MODELS.get(cm["kind"]).config.model_validate(cm)
        pred = price_iterations(build_physical(cfg, CPU_MODEL, hw, 1), it)
        err = pred / it["time_s"].to_numpy() - 1
        it[f"pred_{name}_s"] = pred
        iteration[name] = _err_summary(err, it)
    it.to_csv(work / "real_iterations.csv", index=False, float_format="%.6g")
    requests: dict[str, Any] = {}
    for name in ("table", "table+profile"):
        simulated = simulate(workload, hw, variants[name], max_num_seqs, max_num_batched_tokens)
        requests[name] = request_errors(real.requests, simulated)
        simulated.to_parquet(work / f"sim_requests_{name.replace('+', '_')}.parquet", index=False)
    busy = float(it["time_s"].sum()) / real.wall_s
    return {
        "machine": {
            "cpu": harness._cpu_name(),
            "cores": os.cpu_count(),
            "threads": 1,
            "torch": str(torch.__version__),
            "clock": clock,
            "load_average_start": load0,
            "load_average_end": list(os.getloadavg()),
        },
        "model": CPU_MODEL.model_dump(exclude={"num_params", "sources", "hf_id"}),
        "workload": {
            "trace": "azure-conv",
            "num_requests": num_requests,
            "time_scale": time_scale,
            "prompt_scale": "1/8 (max 512)",
            "output_scale": "1/4 (max 128)",
            "real_wall_s": real.wall_s,
            "busy_fraction": busy,
            "iterations": len(it),
            "max_num_seqs": max_num_seqs,
            "max_num_batched_tokens": max_num_batched_tokens,
        },
        "fit": {
            "params": profile.params.model_dump(),
            "drift_after_over_before": drift,
            **{k: profile.fit[k] for k in ("rows", "mape_before_pct", "mape_pct", "max_ape_pct")},
        },
        "iteration": iteration,
        "requests": requests,
        "elapsed_s": time.perf_counter() - t_start,
    }


def _err_summary(err: np.ndarray, it: pd.DataFrame) -> dict[str, float]:
    pre = it["prefill_seqs"].to_numpy() > 0
    calm = it["preemptions"].to_numpy() == 0  # no other process took the core during the iteration
    a = np.abs(err)
    return {
        "median_abs_err_pct": float(np.median(a) * 100),
        "mean_abs_err_pct": float(np.mean(a) * 100),
        "p90_abs_err_pct": float(np.quantile(a, 0.9) * 100),
        "median_signed_err_pct": float(np.median(err) * 100),
        "prefill_median_abs_err_pct": float(np.median(a[pre]) * 100) if pre.any() else float("nan"),
        "decode_median_abs_err_pct": float(np.median(a[~pre]) * 100) if (~pre).any() else float("nan"),
        "total_time_err_pct": float((np.sum((1 + err) * it["time_s"]) / it["time_s"].sum() - 1) * 100),
        "undisturbed_fraction": float(np.mean(calm)),
        "undisturbed_median_abs_err_pct": float(np.median(a[calm]) * 100) if calm.any() else float("nan"),
    }


# -- the report ---------------------------------------------------------------------------------------------
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
