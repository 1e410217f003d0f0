"""`calibrate fit-run`: fit engine terms so that a replay of an observed run matches it request by request.

The free parameters are dotted scenario paths with bounds: by default the fields of the scenario whose
schema carries `json_schema_extra={"fit_bounds": [lo, hi], "fit_default": true}` (the `serving_engine` terms
that end-to-end logs identify: kernel efficiency scales, per-iteration CPU time, all-reduce bandwidth, front
end), or any paths the caller names. Each evaluation is one simulation of the replayed run. The residuals are log-ratios
simulated/measured of the deciles and mean of TTFT, TPOT and E2E (quantiles, not single requests: a real
run's request-to-request noise is not something a fit should chase), minimised with
`scipy.optimize.least_squares` (trust-region reflective, soft-L1 loss, box bounds) over parameters scaled to
[0, 1] within their bounds. The output is a scenario overlay (the fitted values at their paths) with
provenance and fit quality, applied by `servesim run --profile` or `load_overlay`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel

from calibrate.fit_guard import keep_preset
from calibrate.fit_search import Budget, search_identified
from calibrate.fit_search import best as _best
from calibrate.fit_search import search as _search
from calibrate.fit_search import soft_l1 as _soft_l1
from calibrate.observed import ObservedRun
from calibrate.replay import Replay, Simulated, compare, scenario_data
from sim.config.scenario import Scenario
from sim.errors import ServesimError

OVERLAY_FORMAT = "servesim-overlay/1"
QUANTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
METRIC_WEIGHTS = {"ttft": 1.0, "tpot": 1.0, "e2e": 1.0}
# A tie-breaker towards the start values (the scenario's preset): one residual per term, PRIOR × its move in
# unit-scaled bounds. Moving a term across its whole box costs what a 1 % error on one quantile costs, so it
# decides only along directions the runs leave flat (e.g. memory vs attention scale from one TP1 run) and
# leaves terms the runs determine where the runs put them.
PRIOR = 0.01


@dataclass(frozen=True)
class Param:
    """One free parameter: a dotted path into the scenario, its bounds and its starting value."""

    path: str
    lo: float
    hi: float
    x0: float

    def to_unit(self, x: float) -> float:
        return (min(max(x, self.lo), self.hi) - self.lo) / (self.hi - self.lo)

    def from_unit(self, u: float) -> float:
        return self.lo + float(np.clip(u, 0.0, 1.0)) * (self.hi - self.lo)


def fittable_paths(model: BaseModel, prefix: str = "", defaults_only: bool = False) -> list[tuple[str, float, float]]:
    """(path, lo, hi) of every field under `model` whose schema extra has `fit_bounds` (with `defaults_only`,
    only those marked `fit_default`: the terms fitted when the caller names none), depth first."""
    out: list[tuple[str, float, float]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{prefix}{name}"
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if "fit_bounds" in extra and (extra.get("fit_default", True) or not defaults_only):
            bounds = extra["fit_bounds"]
            assert isinstance(bounds, list) and len(bounds) == 2, f"{path}: fit_bounds must be [lo, hi]"
            out.append((path, float(str(bounds[0])), float(str(bounds[1]))))
        elif isinstance(value, BaseModel):
            out.extend(fittable_paths(value, path + ".", defaults_only))
    return out


def get_path(data: dict[str, Any], path: str) -> Any:
    cur: Any = data
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            raise ServesimError(f"--param {path}: the scenario has no field {key!r} there")
        cur = cur[key]
    return cur


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    cur = data
    for key in keys[:-1]:
        cur = cur.setdefault(key, {})
    cur[keys[-1]] = value


def parse_param(spec: str) -> tuple[str, float, float]:
    """`path=lo:hi` (command line) into (path, lo, hi)."""
    try:
        path, rng = spec.split("=", 1)
        lo, hi = (float(x) for x in rng.split(":"))
    except ValueError:
        raise ServesimError(f"--param expects path=lo:hi (e.g. cost_model.base_s=0:0.01), found {spec!r}") from None
    if not lo < hi:
        raise ServesimError(f"--param {spec}: expected lo < hi")
    return path.strip(), lo, hi


def make_params(sc: Scenario, explicit: list[tuple[str, float, float]] | None) -> list[Param]:
    """The free parameters, starting from the scenario's values (clipped into their bounds)."""
    spec = explicit if explicit else fittable_paths(sc, defaults_only=True)
    if not spec:
        raise ServesimError(
            "nothing to fit: the scenario has no fields with fit_bounds; name some with --param path=lo:hi"
        )
    data = scenario_data(sc)
    params = []
    for path, lo, hi in spec:
        v = get_path(data, path)
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise ServesimError(f"--param {path}: expected a numeric field, found {v!r}")
        params.append(Param(path, lo, hi, min(max(float(v), lo), hi)))
    return params


TP_ONLY = ("allreduce", "nccl")  # engine terms that cost nothing on one GPU


def tp_sizes(sc: Scenario) -> set[int]:
    """The tensor-parallel sizes a scenario runs (a disaggregated one: each pool's)."""
    c = sc.cluster
    if c.prefill is not None and c.decode is not None:
        return {c.prefill.tp, c.decode.tp}
    return {c.tp}


def informed(path: str, pairs: list[tuple[ObservedRun, Scenario]]) -> bool:
    """Whether the observed runs say anything about the term at `path`: all-reduce terms need a run with
    tp > 1 (a disaggregated run: a pool's); the front-end term needs a log whose clock starts at the client (not
    inside the engine). At one TP size the all-reduce scale trades almost one-for-one with the kernel scales
    (correlation -0.997 fitting Qwen3-32B TP2 alone); it stays free all the same, the prior breaking the tie:
    fixing it there moved the Qwen -> Llama cross-fit from -2.2 % to +33.7 % E2E on a switched box
    (benchmarks/VALIDATION.md, branch s7-engine). The per-MoE-layer host term needs a run of a MoE model (a
    dense one never pays it)."""
    from sim.costmodel.build import prices_serving_engine

    name = path.rsplit(".", 1)[-1]
    if path.startswith("serving_engine.") and not any(prices_serving_engine(sc.cost_model) for _, sc in pairs):
        return False  # an analytic cost model (`linear`) ignores the engine terms
    if any(k in name for k in TP_ONLY) and all(max(tp_sizes(sc)) == 1 for _, sc in pairs):
        return False
    if name == "eager_host_per_moe_layer_s" and not any(sc.base_model_spec.num_moe_layers for _, sc in pairs):
        return False
    return not (name == "frontend_s" and all(run.engine_side for run, _ in pairs))


def residuals(run: ObservedRun, simd: Simulated, weights: dict[str, float] | None = None) -> np.ndarray:
    """Log-ratios simulated/measured of the mean and deciles of TTFT, TPOT and E2E, each metric times its weight
    (`METRIC_WEIGHTS` by default; a replay that left requests unfinished is penalised through their missing
    latencies: quantiles over what finished)."""
    out: list[float] = []
    pairs = (("ttft", run.ttft_s, simd.ttft_s), ("tpot", run.tpot_s, simd.tpot_s), ("e2e", run.e2e_s, simd.e2e_s))
    for name, meas, sim in pairs:
        m, s = meas[np.isfinite(meas)], sim[np.isfinite(sim)]
        w = (weights or METRIC_WEIGHTS)[name]
        if m.size == 0:
            continue
        if s.size == 0:
            out.extend([w * 5.0] * (1 if run.means_only else len(QUANTILES) + 1))
            continue
        if run.means_only:  # only the run's means were measured
            mq, sq = np.array([m.mean()]), np.array([s.mean()])
        else:
            mq = np.append(np.percentile(m, QUANTILES), m.mean())
            sq = np.append(np.percentile(s, QUANTILES), s.mean())
        floor = 1e-6
        out.extend((w * np.log(np.maximum(sq, floor) / np.maximum(mq, floor))).tolist())
    unfinished = int(np.sum(~np.isfinite(simd.e2e_s))) / max(1, len(simd.e2e_s))
    out.append(5.0 * unfinished)
    return np.asarray(out)


@dataclass
class FitResult:
    params: list[Param]
    values: dict[str, float]
    before: list[dict[str, Any]]  # per fitted run: `replay.compare` at the start values
    after: list[dict[str, Any]]  # ... and at the fitted values
    evaluations: int
    wall_s: float
    at_bounds: list[str] = field(default_factory=list)
    cost_before: float = math.nan  # soft-L1 loss of the runs' residuals and the tie-breaker's (`prior`)
    cost_after: float = math.nan
    diagnosis: dict[str, Any] = field(default_factory=dict)  # `calibrate.fit_quality.diagnose` at the fit
    prior: float = PRIOR  # the tie-breaker weight this fit used
    runs_cost_before: float = math.nan  # the loss of the runs' residuals alone (no tie-breaker)
    runs_cost_after: float = math.nan
    kept_preset: list[str] = field(default_factory=list)  # why the start values were kept (`fit_guard`); [] = fitted
    rejected: dict[str, Any] = field(default_factory=dict)  # the search's best point when the preset was kept
    frozen: dict[str, str] = field(default_factory=dict)  # terms the runs cannot place, kept at their start: why


def fit_run(
    run: ObservedRun,
    base: Scenario,
    explicit: list[tuple[str, float, float]] | None = None,
    *,
    max_evals: int = 60,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Fit the free parameters of `base` to one observed run (see the module docstring)."""
    return fit_runs([(run, base)], explicit, max_evals=max_evals, log=log)


def fit_runs(
    pairs: list[tuple[ObservedRun, Scenario]],
    explicit: list[tuple[str, float, float]] | None = None,
    *,
    max_evals: int = 60,
    log: Callable[[str], None] | None = None,
    prior: float = PRIOR,
    diagnose: bool = True,
    guard: tuple[str, ...] | None = None,
    weights: dict[str, float] | None = None,
    identify: bool = False,
) -> FitResult:
    """One set of values for several observed runs, each replayed on its own scenario (runs at several TP sizes
    separate terms no single run can, e.g. all-reduce from kernel scales), starting at the first scenario's
    values. `prior`: see PRIOR. `diagnose`: one replay per term at the fit (`calibrate.fit_quality`), within
    `max_evals` (evaluations, each a replay of every run). `guard`: metrics for the keep-the-preset rule
    (`calibrate.fit_guard`); None: the point as found. `weights`: per metric (default `METRIC_WEIGHTS`). `identify`:
    search only the terms the runs can place from the start values (`_find`)."""
    params = make_params(pairs[0][1], explicit)
    if not explicit:  # terms the runs cannot inform keep the scenario's (preset) values
        params = [p for p in params if informed(p.path, pairs)]
        if not params:
            raise ServesimError("nothing to fit: no free term these runs inform; name some with --param path=lo:hi")
    replays, start = [Replay(run, sc) for run, sc in pairs], time.perf_counter()
    data0 = [scenario_data(sc) for _, sc in pairs]
    cache: dict[tuple[float, ...], tuple[np.ndarray, list[Simulated]]] = {}
    per_run: dict[tuple[float, ...], list[np.ndarray]] = {}  # data residuals per run (fit quality)
    u0 = np.array([p.to_unit(p.x0) for p in params])
    diagnose = diagnose and max_evals > len(params)
    limit = [max(1, max_evals - len(params)) if diagnose else max_evals]  # the search's share; then all of it

    def evaluate(u: np.ndarray) -> tuple[np.ndarray, list[Simulated]]:
        key = tuple(np.round(u, 12).tolist())
        if key not in cache:
            if len(cache) >= limit[0]:
                raise Budget
            sims, res = [], []
            for rp, d0 in zip(replays, data0, strict=True):
                d = copy.deepcopy(d0)
                for p, ui in zip(params, u, strict=True):
                    set_path(d, p.path, p.from_unit(float(ui)))
                sims.append(rp.simulate(rp.scenario(d)))
                res.append(residuals(rp.run, sims[-1], weights) / math.sqrt(len(replays)))
            per_run[key] = res
            cache[key] = (np.concatenate([*res, prior * (np.clip(u, 0.0, 1.0) - u0)]), sims)
            if log is not None:
                vals = ", ".join(
                    f"{p.path.rsplit('.', 1)[-1]}={p.from_unit(float(x)):.4g}" for p, x in zip(params, u, strict=True)
                )
                log(f"eval {len(cache)}: loss {float(np.sum(_soft_l1(cache[key][0]))):.5f} ({vals})")
        return cache[key]

    try:
        r0, sim0 = evaluate(u0)
        best_u, frozen = _find(evaluate, per_run, cache, params, u0, limit[0], pairs[0][1].seed, identify)
        (r1, sim1), limit[0] = cache[best_u], max_evals
        diag = _diagnose(evaluate, per_run, params, best_u) if diagnose else {}
    finally:
        for rp in replays:
            rp.close()
    values = {p.path: p.from_unit(u) for p, u in zip(params, best_u, strict=True)}
    at = [p.path for p, u in zip(params, best_u, strict=True) if u <= 1e-3 or u >= 1 - 1e-3]
    runs = [run for run, _ in pairs]
    res = FitResult(
        params,
        values,
        [compare(r, s) for r, s in zip(runs, sim0, strict=True)],
        [compare(r, s) for r, s in zip(runs, sim1, strict=True)],
        len(cache),
        time.perf_counter() - start,
        at,
        _loss(r0, len(params)),
        _loss(r1, len(params)),
        diag,
        prior,
        _loss(r0[: len(r0) - len(params)], 0),
        _loss(r1[: len(r1) - len(params)], 0),
        frozen=frozen,
    )
    return res if guard is None else keep_preset(res, guard)


def _find(
    evaluate: Callable[[np.ndarray], Any],
    per_run: dict[tuple[float, ...], list[np.ndarray]],
    cache: dict[tuple[float, ...], Any],
    params: list[Param],
    u0: np.ndarray,
    limit: int,
    seed: int,
    identify: bool,
) -> tuple[tuple[float, ...], dict[str, str]]:
    """The search's best point and the terms frozen at their start values. With `identify`, one replay per term
    at the start values gives the Jacobian of the runs' residuals (no tie-breaker) and only the terms the runs can
    place (`fit_quality.identified`) are searched (`fit_search.search_identified`). Off by default: on the
    LLMServingSim cross-fit it was worse than searching every term (benchmarks/VALIDATION.md, branch s15-fit)."""
    if not (identify and len(params) > 1 and limit >= 3 * len(params)):  # probes + a search worth the name
        _search(evaluate, cache, len(params), limit, seed)
        return _best(cache), {}

    def data(u: np.ndarray) -> np.ndarray:
        evaluate(u)
        return np.concatenate(per_run[tuple(np.round(u, 12).tolist())])

    return search_identified(evaluate, data, cache, [p.path for p in params], u0, limit, seed)


def _loss(r: np.ndarray, n_prior: int) -> float:
    """Soft-L1 loss of residuals whose last `n_prior` entries are the tie-breaker's: the runs' part plus the
    tie-breaker's, summed apart so that a zero tie-breaker leaves the runs' loss bit for bit."""
    runs = float(np.sum(_soft_l1(r[: len(r) - n_prior])))
    return runs + float(np.sum(_soft_l1(r[len(r) - n_prior :]))) if n_prior else runs


def _diagnose(
    evaluate: Callable[[np.ndarray], Any],
    per_run: dict[tuple[float, ...], list[np.ndarray]],
    params: list[Param],
    best: tuple[float, ...],
) -> dict[str, Any]:
    """`calibrate.fit_quality` at the fitted point: the runs' residuals (no tie-breaker), one replay per term."""
    from calibrate import fit_quality

    def data(u: np.ndarray) -> np.ndarray:
        evaluate(u)
        return np.concatenate(per_run[tuple(np.round(u, 12).tolist())])

    ub = np.asarray(best, dtype=np.float64)
    r = data(ub)
    n = len(per_run[best])
    return fit_quality.diagnose(
        fit_quality.jacobian(data, ub, r),
        r,
        [p.path for p in params],
        [p.hi - p.lo for p in params],
        [x * math.sqrt(n) for x in per_run[best]],  # undo the 1/sqrt(runs) weighting: each run's own RMS
    )


def quality(cmp: dict[str, Any]) -> dict[str, float | None]:
    """Signed error (%) of the mean and p90 of each metric: the fit's headline numbers."""
    out: dict[str, float | None] = {}
    for m, v in cmp.items():
        for s in ("mean", "p90"):
            if s not in v:
                continue
            e = v[s]["error_pct"]
            out[f"{m}_{s}_error_pct"] = round(e, 3) if math.isfinite(e) else None
    return out


def overlay(res: FitResult, runs: list[ObservedRun], scenario_path: str | None) -> dict[str, Any]:
    """The profile: the fitted values at their scenario paths, plus `fit_run` provenance (ignored on apply)."""
    out: dict[str, Any] = {"format": OVERLAY_FORMAT}
    for path, v in res.values.items():
        set_path(out, path, float(f"{v:.6g}"))
    for path, reading in res.diagnosis.get("reading", {}).items():  # a structural reading `fit_means` chose
        set_path(out, path, reading)
    out["fit_run"] = {
        "observed": [
            {
                "file": run.source,
                "format": run.fmt,
                "requests": len(run),
                "meta": {k: v for k, v in run.meta.items() if isinstance(v, str | int | float)},
            }
            for run in runs
        ],
        "scenario": scenario_path,
        "fitted_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "method": res.diagnosis.get("method")
        or "scipy least_squares trf, soft_l1 on log-ratios of TTFT/TPOT/E2E deciles and means, "
        f"tie-breaker {res.prior} x unit move towards the start values",
        "prior": res.prior,
        "bounds": {p.path: [p.lo, p.hi] for p in res.params},
        "start": {p.path: p.x0 for p in res.params},
        "evaluations": res.evaluations,
        "wall_s": round(res.wall_s, 2),
        # the fit's objective: the runs' residuals plus the tie-breaker's (zero at the start values)
        "loss_before": round(res.cost_before, 6),
        "loss_after": round(res.cost_after, 6),
        "loss_includes_prior": res.prior > 0,
        "runs_loss_before": round(res.runs_cost_before, 6),  # the runs' residuals alone
        "runs_loss_after": round(res.runs_cost_after, 6),
        "before": [quality(c) for c in res.before],
        "after": [quality(c) for c in res.after],
        "at_bounds": res.at_bounds,
        "kept_preset": res.kept_preset,
        "frozen": res.frozen,  # terms kept at their start values: the runs cannot place them (fit_quality.identified)
        "identifiability": res.diagnosis,
    }
    return out


def write_overlay(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def overlay_overrides(path: str | Path) -> list[str]:
    """A profile overlay as `a.b=value` overrides (what `servesim run --profile` applies before any --set)."""
    p = Path(path)
    if not p.is_file():
        raise ServesimError(f"{p}: profile not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ServesimError(f"{p}:{line}: not YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict) or data.get("format") != OVERLAY_FORMAT:
        raise ServesimError(f"{p}:1: expected a profile with format: {OVERLAY_FORMAT} (from calibrate fit-run)")
    out: list[str] = []

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out.append(
                    f"{prefix}{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                )

    walk({k: v for k, v in data.items() if k not in ("format", "fit_run")}, "")
    return out
