"""Fit a handful of engine-level parameters to measured iteration times and write a cost profile.

Kernel tables price the operators; a serving engine adds what they miss: a fixed cost per iteration
(scheduling, sampling, launches), per sequence (bookkeeping, detokenising), per all-reduce (engine
synchronisation), and achieved rates that differ from a microbenchmark's (other kernels, fusion, clocks).
We fit `ProfileParams` — overheads in seconds, efficiency scales as multipliers — by least squares on
the log of predicted/measured time (relative error, so a 5 ms decode counts as much as a 2 s prefill),
within physical bounds and with a weak pull of the scales towards 1. Few bounded parameters with
physical meaning extrapolate to larger batches and longer prompts; a black box would not.

Measurements CSV: `prefill_tokens,batch_size,context_tokens,time_ms`; a row with prefill_tokens > 0 is a
prefill of batch_size prompts of prefill_tokens each, else one decode step of batch_size sequences with
context_tokens each in the KV cache (the same convention as `servesim estimate`).
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import yaml

from hwprofiles.specs import GPUSpec, ModelSpec
from sim.costmodel.build import physical_parts
from sim.costmodel.models import (
    COST_MODELS,
    CostProfile,
    ProfileParams,
    RooflineCost,
    RooflineCostConfig,
    TableCostConfig,
)
from sim.errors import ServesimError

COLUMNS = ("prefill_tokens", "batch_size", "context_tokens", "time_ms")
ALL_PARAMS = (
    "iteration_overhead_s",
    "layer_overhead_s",
    "seq_overhead_s",
    "comm_latency_s",
    "compute_scale",
    "memory_scale",
    "attention_scale",
)
SCALES = ("compute_scale", "memory_scale", "attention_scale")


def default_params(tp: int) -> list[str]:
    """What a fit frees by default. Per-layer overhead (within one model) and all-reduce latency (at one
    tp) add a constant per iteration, indistinguishable from the per-iteration overhead: free them with
    `--params` only when the rows can tell them apart."""
    del tp
    return ["iteration_overhead_s", "seq_overhead_s", "compute_scale", "memory_scale", "attention_scale"]


def read_measurements(path: str | Path) -> pd.DataFrame:
    """The measurements CSV, validated (one-line errors naming the file and line)."""
    p = Path(path)
    if not p.is_file():
        raise ServesimError(f"{p}: measurements file not found")
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ServesimError(f"{p}: not a CSV file ({str(e).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ServesimError(f"{p}:1: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    for c in COLUMNS:
        vals = pd.to_numeric(df[c], errors="coerce")
        lo = 0 if c in ("prefill_tokens", "context_tokens") else 1
        bad = vals.isna() | (vals < lo) | ((vals != vals.round()) if c != "time_ms" else (vals <= 0))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            what = "a positive number" if c == "time_ms" else f"an integer >= {lo}"
            raise ServesimError(f"{p}:{i + 2}: {c}: expected {what}, found {df[c].iloc[i]!r}")
        df[c] = vals.astype(np.float64 if c == "time_ms" else np.int64)
    if df.empty:
        raise ServesimError(f"{p}: no measurement rows")
    return df[list(COLUMNS)].reset_index(drop=True)


def predict(cost: Any, rows: pd.DataFrame) -> np.ndarray:
    """Predicted seconds of each measurement row under `cost`."""
    out = np.empty(len(rows))
    for i, (p, b, c) in enumerate(zip(rows["prefill_tokens"], rows["batch_size"], rows["context_tokens"], strict=True)):
        if p > 0:
            out[i] = cost.iteration([(int(p), 0)] * int(b), 0, 0)
        else:
            out[i] = float(cost.decode_run(int(b), np.array([float(b * (c + 1))]))[0])
    return out


class Fitter:
    """Least squares in log(predicted / measured) over the free parameters of a base cost model."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GPUSpec,
        tp: int,
        base: dict[str, Any] | None = None,
        base_dir: Path | None = None,
        free: list[str] | None = None,
        prior: float = 0.01,
    ) -> None:
        cfg_dict = {"kind": "roofline", **(base or {})}
        fittable = [k for k in COST_MODELS.kinds() if COST_MODELS.caps(k).fits_profile]
        if cfg_dict.get("kind") not in fittable:
            raise ServesimError(f"fit base kind must be {' or '.join(fittable)}, not {cfg_dict.get('kind')!r}")
        cfg_dict.pop("profile", None)
        config = COST_MODELS.get(cfg_dict["kind"]).config.model_validate(cfg_dict)
        self.cfg = cast(RooflineCostConfig | TableCostConfig, config)  # the kind was checked just above
        self.model, self.gpu, self.tp, self.prior = model, gpu, tp, prior
        self.parts = physical_parts(self.cfg, model, gpu, tp, base_dir)
        self.parts["engine"] = None  # a fitted profile replaces the serving engine's terms (see physical_parts)
        self.free = list(free or default_params(tp))
        unknown = [f for f in self.free if f not in ALL_PARAMS]
        if unknown:
            raise ServesimError(f"unknown fit parameter(s) {', '.join(unknown)}; known: {', '.join(ALL_PARAMS)}")
        self.start = ProfileParams(
            iteration_overhead_s=self.cfg.iteration_overhead_s,
            layer_overhead_s=self.cfg.layer_overhead_s,
            seq_overhead_s=self.cfg.seq_overhead_s,
        )

    def cost(self, params: ProfileParams) -> RooflineCost:
        return RooflineCost(self.cfg, self.model, self.gpu, self.tp, **{**self.parts, "params": params})

    def _params(self, x: np.ndarray, t0: float) -> ProfileParams:
        vals = self.start.model_dump()
        for name, v in zip(self.free, x, strict=True):
            vals[name] = math.exp(v) if name in SCALES else v * t0
        return ProfileParams(**vals)

    def fit(self, rows: pd.DataFrame) -> tuple[ProfileParams, dict[str, Any]]:
        """Best parameters for `rows` and a summary (errors before and after, the bounds that bind)."""
        from scipy.optimize import least_squares

        meas = rows["time_ms"].to_numpy(np.float64) * 1e-3
        t0 = float(np.median(meas))
        tmin = float(meas.min())
        lo, hi, x0 = [], [], []
        for name in self.free:
            if name in SCALES:
                lo.append(math.log(0.2))
                hi.append(math.log(5.0))
                x0.append(0.0)
            else:
                cap = {
                    "iteration_overhead_s": tmin,
                    "layer_overhead_s": tmin / self.model.num_layers,
                    "seq_overhead_s": tmin,
                    "comm_latency_s": tmin / (2 * self.model.num_layers),
                }[name]
                lo.append(0.0)
                hi.append(cap / t0)
                x0.append(min(getattr(self.start, name), 0.5 * cap) / t0 or 0.01 * cap / t0)
        w_prior = self.prior
        scale_idx = [i for i, n in enumerate(self.free) if n in SCALES]

        def resid(x: np.ndarray) -> np.ndarray:
            pred = predict(self.cost(self._params(x, t0)), rows)
            return np.concatenate([np.log(pred / meas), w_prior * x[scale_idx]])

        res = least_squares(resid, np.array(x0), bounds=(np.array(lo), np.array(hi)), x_scale=1.0, diff_step=1e-4)
        best = self._params(res.x, t0)
        before = predict(self.cost(self.start), rows)
        after = predict(self.cost(best), rows)
        at_bound = [n for n, v, a, b in zip(self.free, res.x, lo, hi, strict=True) if v <= a + 1e-9 or v >= b - 1e-9]
        summary = {
            "rows": len(rows),
            "free": self.free,
            "mape_before_pct": _mape(before, meas),
            "mape_pct": _mape(after, meas),
            "max_ape_pct": float(np.max(np.abs(after / meas - 1)) * 100),
            "at_bounds": at_bound,
        }
        return best, summary


def _mape(pred: np.ndarray, meas: np.ndarray) -> float:
    return float(np.mean(np.abs(pred / meas - 1)) * 100)


def row_errors(cost: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """Each row with its predicted time and relative error (per cent)."""
    out = rows.copy()
    out["predicted_ms"] = predict(cost, rows) * 1e3
    out["error_pct"] = (out["predicted_ms"] / out["time_ms"] - 1) * 100
    return out


def fit_profile(
    measurements: pd.DataFrame,
    model: ModelSpec,
    gpu: GPUSpec,
    tp: int = 1,
    *,
    base: dict[str, Any] | None = None,
    base_dir: Path | None = None,
    free: list[str] | None = None,
    source: str = "",
) -> tuple[CostProfile, pd.DataFrame, Fitter]:
    """Fit, and return the profile, the per-row errors and the fitter (to evaluate held-out rows)."""
    fitter = Fitter(model, gpu, tp, base, base_dir, free)
    params, summary = fitter.fit(measurements)
    summary.update(
        {
            "measurements": source,
            "date": _dt.date.today().isoformat(),
            "base": {k: v for k, v in fitter.cfg.model_dump().items() if k in ("kind", "efficiency", "tables")},
        }
    )
    prof = CostProfile(model=model.name, hardware=gpu.name, tp=tp, base=fitter.cfg.kind, params=params, fit=summary)
    return prof, row_errors(fitter.cost(params), measurements), fitter


def write_profile(profile: CostProfile, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = profile.model_dump(mode="json")
    p.write_text(
        "# servesim cost profile: engine-level parameters fitted by `servesim calibrate fit`.\n"
        "# Use it as cost_model: {kind: "
        + profile.base
        + ", profile: "
        + p.name
        + "} or `servesim estimate --profile`.\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    return p
