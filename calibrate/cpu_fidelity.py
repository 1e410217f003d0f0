"""Levels 2 and 3 of the fidelity report, on this CPU: iterations and requests of a real serving run.

The harness measures the operators of a small transformer, `calibrate fit` fits engine overheads on
synthetic batches, then a real continuous-batching loop (`calibrate.realrun`) serves a scaled Azure trace;
every real iteration is priced by the cost model from its batch, and the same workload is simulated by
servesim (`sim.run`, fcfs, the table cost model + profile) against the real run's per-request TTFT, TPOT and
E2E. `calibrate.fidelity` puts it in the report beside the operator level.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from hwprofiles.specs import GPUSpec, ModelSpec

if TYPE_CHECKING:
    from calibrate.fit import CostProfile
    from calibrate.realrun import RunLog

Log = Callable[[str], None]


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
    from calibrate.kernels import torch_mod
    from calibrate.realrun import CPU_MODEL, Engine, measure_iterations, scaled_trace, serve

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
    profile, drift = _fit_bracketed(before, after, work, tables, hw)
    real.requests.to_csv(work / "real_requests.csv", index=False, float_format="%.6g")
    log(f"4/4 fitted a profile; pricing {len(real.iterations)} real iterations and simulating the workload")
    it, iteration, requests = _price_and_simulate(
        work, tables, hw, real, workload, max_num_seqs, max_num_batched_tokens
    )
    busy = float(it["time_s"].sum()) / real.wall_s
    return {
        "machine": _machine(str(torch.__version__), clock, load0),
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


def _fit_bracketed(
    before: pd.DataFrame, after: pd.DataFrame, work: Path, tables: Path, hw: GPUSpec
) -> tuple[CostProfile, float]:
    """Fit the profile on the synthetic batches timed before and after the real run (geometric mean of the
    two: it averages out a machine whose load drifts); returns the profile and the after/before drift."""
    from calibrate.fit import fit_profile, write_profile
    from calibrate.realrun import CPU_MODEL

    meas = before.copy()
    meas["time_ms"] = np.sqrt(before["time_ms"] * after["time_ms"])
    drift = float(np.median(after["time_ms"] / before["time_ms"]))
    meas.to_csv(work / "iterations.csv", index=False, float_format="%.5g")
    base = {"kind": "table", "tables": str(tables)}
    profile, fit_rows, _ = fit_profile(meas, CPU_MODEL, hw, 1, base=base, source="iterations.csv")
    write_profile(profile, work / "profile.yaml")
    fit_rows.to_csv(work / "fit_rows.csv", index=False, float_format="%.5g")
    return profile, drift


def _machine(torch_version: str, clock: str, load0: list[float]) -> dict[str, Any]:
    """The machine the CPU fidelity ran on (the load average is read now, at the end of the run)."""
    from calibrate import harness

    return {
        "cpu": harness._cpu_name(),
        "cores": os.cpu_count(),
        "threads": 1,
        "torch": torch_version,
        "clock": clock,
        "load_average_start": load0,
        "load_average_end": list(os.getloadavg()),
    }


def _price_and_simulate(
    work: Path,
    tables: Path,
    hw: GPUSpec,
    real: RunLog,
    workload: pd.DataFrame,
    max_num_seqs: int,
    max_num_batched_tokens: int,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """Each cost-model variant prices the real iterations, and the table variants simulate the served workload:
    (iterations with predictions, iteration error summaries, request error summaries); files go to `work`."""
    from calibrate.realrun import CPU_MODEL
    from sim.core.registry import COST_MODELS
    from sim.costmodel.build import build_physical

    variants: dict[str, dict[str, Any]] = {
        "table": {"kind": "table", "tables": str(tables), "iteration_overhead_s": 0.0},
        "table+profile": {"kind": "table", "tables": str(tables), "profile": str(work / "profile.yaml")},
        "roofline curves+profile": {"kind": "roofline", "tables": str(tables), "profile": str(work / "profile.yaml")},
    }
    it = real.iterations.copy()
    iteration: dict[str, Any] = {}
    for name, cm in variants.items():
        cfg = COST_MODELS.get(cm["kind"]).config.model_validate(cm)
        pred = price_iterations(build_physical(cfg, CPU_MODEL, hw, 1), it)  # type: ignore[arg-type]  # roofline or table config, by kind
        err = pred / it["time_s"].to_numpy() - 1
        it[f"pred_{name}_s"] = pred
        iteration[name] = _err_summary(err, it)
    it.to_csv(work / "real_iterations.csv", index=False, float_format="%.6g")
    requests: dict[str, Any] = {}
    for name in ("table", "table+profile"):
        simulated = simulate(workload, hw, variants[name], max_num_seqs, max_num_batched_tokens)
        requests[name] = request_errors(real.requests, simulated)
        simulated.to_parquet(work / f"sim_requests_{name.replace('+', '_')}.parquet", index=False)
    return it, iteration, requests


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
