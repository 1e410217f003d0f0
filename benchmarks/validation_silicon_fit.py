"""The silicon cross-fit per engine + GPU (+ disagg) + model: a few physically named engine terms, fitted on some
configurations of one model on one engine and GPU, reported on the others (`calibrate.fit_linear`).

    python benchmarks/validation.py --silicon-cross-fit [--groups "vllm h200_sxm" ...] [--out FILE]

Subgroups: the rows of one engine + GPU (+ disagg) and one model (`model_path`); a model with fewer than
`MIN_MODEL_ROWS` expressible configurations there is pooled with the group's other such models of its family (dense
or MoE: `ModelSpec.num_moe_layers`). Split (as `validation_silicon`): a subgroup's configurations, sorted by (tp,
isl, osl, clients), at up to `PER_SUBGROUP` evenly spaced positions; even positions fitted, odd ones reported; no
error is reported on a fitted configuration. A subgroup of fewer than 3 replayed configurations is not fitted.

The terms (`TERMS`, each the schema's `fit_bounds`; the ladder `LADDER` is nested, decode level first):
`memory_efficiency_scale` (decode step's weight and KV reads: TPOT's level), `cost_model.layer_overhead_s`
(fixed GPU time per layer per step: TPOT's intercept at small batch), `compute_efficiency_scale` (prefill
FLOP/s: TTFT's slope in isl), `frontend_s` (per request: TTFT's intercept). How many of them are freed is
chosen per subgroup by leave-one-out over its fitted rows (`fit_linear.choose`); the fitted point is replayed
and kept only where it improves the fitted rows' loss and their median |error| of TPOT and E2E
(`calibrate.fit_guard.worse`).

Run length: presets, fitted points and reported rows replay the InferenceX load in full (10 x clients requests);
the slope replays (`fit_linear.linearise`, one per term per fitted row, and their own base) replay the first
`PROBE_REQUESTS` x clients of them: a slope needs the step's response, not the run's last digit.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.validation_silicon import CONFIG, expressible_rows, group_label, observed_row
from calibrate import fit_linear as fl
from calibrate.fit_run import fittable_paths, get_path, informed
from calibrate.observed import ObservedRun
from calibrate.replay import compare, replay_once, scenario_data
from sim.config.scenario import Scenario, load_scenario
from sim.errors import ServesimError

# (path, log coordinates, bounds where the schema gives none): scales move in log, times additively
# (calibrate/fit_linear.py). `cost_model.layer_overhead_s`: fixed GPU time per layer per step (kernel floors and
# launch gaps inside CUDA graphs; issue 12: "per-layer launch and synchronisation costs that do not shrink with TP",
# "decode at batch 1 misses a ~15 us floor"), the TPOT intercept at small batch that vLLM V1's async scheduling
# cannot hide (`scheduler_s` is charged there only beyond the GPU's step, so its slope is 0 at the presets); bounds
# 0-100 us per layer (validation.py's FALLBACK_PARAMS allow 200 us; 100 us x 60 layers is already 6 ms a step).
TERMS: tuple[tuple[str, bool, tuple[float, float] | None], ...] = (
    ("serving_engine.memory_efficiency_scale", True, None),
    ("cost_model.layer_overhead_s", False, (0.0, 1e-4)),
    ("serving_engine.compute_efficiency_scale", True, None),
    ("serving_engine.frontend_s", False, None),
)
LADDER = ([0], [0, 1], [0, 1, 2], [0, 1, 2, 3])  # indices into the subgroup's terms (those the rows inform)
PER_SUBGROUP = 8  # configurations replayed per subgroup: up to 4 fitted, 4 reported
MIN_MODEL_ROWS = 6  # a model with fewer configurations in its engine + GPU group is pooled with its family
PROBE_REQUESTS = 3  # requests per client in a slope replay (the full InferenceX load sends 10)


def architecture(sc: Scenario) -> str:
    """The model's architecture as the catalogue prices it (its spec without name, id and sources): checkpoints of
    one architecture (DeepSeek-R1 and -V3: "same architecture as V3", hwprofiles/data/models.yaml) cost alike."""
    spec = sc.base_model_spec.model_dump(mode="json", exclude={"name", "hf_id", "sources"})
    return repr(sorted(spec.items()))


def subgroups(kept: list[tuple[pd.Series, Scenario]]) -> dict[str, list[tuple[pd.Series, Scenario]]]:
    """engine + GPU (+ disagg) / model and precision, or / dense | / moe for models with fewer than MIN_MODEL_ROWS
    configurations there; rows in the order given (validation_silicon sorts them by tp, isl, osl, clients). A
    model is an architecture at a precision (the weights' bytes): checkpoints of one architecture are one model
    (named "A = B"), and a measurement listed under both names (the same configuration and means: 382 DeepSeek-R1
    / -V3 configurations of the CSV) is kept once."""
    seen: set[tuple[Any, ...]] = set()
    rows: list[tuple[tuple[str, str, str], pd.Series, Scenario]] = []
    names: dict[tuple[str, str, str], set[str]] = {}
    for row, sc in kept:
        key = (group_label(row), architecture(sc), str(row["precision"]))
        dup = (key, *(str(row[c]) for c in CONFIG if c != "model_path"), row["ttft_key"], row["tpot_key"])
        if dup not in seen:
            seen.add(dup)
            rows.append((key, row, sc))
            names.setdefault(key, set()).add(str(row["model_path"]))
    count: dict[tuple[str, str, str], int] = {}
    for key, _, _ in rows:
        count[key] = count.get(key, 0) + 1
    out: dict[str, list[tuple[pd.Series, Scenario]]] = {}
    for key, row, sc in rows:
        precision = "as published" if key[2] == "nan" else key[2]
        model = f"{' = '.join(sorted(names[key]))} {precision}"
        if count[key] < MIN_MODEL_ROWS:
            model = "moe" if sc.base_model_spec.num_moe_layers else "dense"
        out.setdefault(f"{key[0]} / {model}", []).append((row, sc))
    return out


def spaced(rows: list[Any], cap: int) -> list[Any]:
    """Up to `cap` evenly spaced items of `rows` (deterministic; all of them when there are no more)."""
    return rows if len(rows) <= cap else [rows[int(k * len(rows) / cap)] for k in range(cap)]


def _short(run: ObservedRun, n: int) -> ObservedRun:
    """The run's first n requests (a slope replay's shorter closed loop)."""
    if n >= len(run):
        return run
    return ObservedRun(
        run.source, run.fmt, run.prompt_tokens[:n], run.output_tokens[:n], run.ttft_s[:n], run.e2e_s[:n],
        concurrency=run.concurrency, means_only=run.means_only, meta=run.meta,
    )  # fmt: skip


def _logs(run: ObservedRun, sc: Scenario) -> np.ndarray:
    """log of the replayed mean TTFT, TPOT and E2E (nan where nothing finished)."""
    c = compare(run, replay_once(run, sc))
    v = np.array([c[m]["mean"]["simulated_s"] for m in fl.METRICS], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, np.log(v), np.nan)


def _measured(run: ObservedRun) -> np.ndarray:
    return np.log(np.array([np.nanmean(run.ttft_s), np.nanmean(run.tpot_s), np.nanmean(run.e2e_s)]))


def _at(sc: Scenario, terms: list[fl.Term], moves: np.ndarray) -> Scenario:
    sets = [f"{t.path}={t.value(float(m))!r}" for t, m in zip(terms, moves, strict=True) if m != 0.0]
    return load_scenario(sc, sets) if sets else sc


def _errs(measured: np.ndarray, logs: np.ndarray) -> dict[str, float]:
    return fl.errors_pct(measured, logs)


def med(errs: list[dict[str, float]], m: str) -> float:
    v = [abs(e[m]) for e in errs if math.isfinite(e[m])]
    return statistics.median(v) if v else math.nan


def terms_for(pairs: list[tuple[ObservedRun, Scenario]]) -> list[fl.Term]:
    """TERMS the rows inform (`calibrate.fit_run.informed`) and their scenario has, with the schema's bounds (or
    TERMS' own) and the scenario's values."""
    bounds = {p: (lo, hi) for p, lo, hi in fittable_paths(pairs[0][1])}
    data = scenario_data(pairs[0][1])
    out = []
    for path, log, own in TERMS:
        lims = bounds.get(path, own)
        try:
            x0 = get_path(data, path)
        except ServesimError:
            continue  # e.g. a cost model without that field
        if lims is None or not informed(path, pairs):
            continue
        lo, hi = lims
        out.append(fl.Term(path, lo, hi, min(max(float(x0), lo), hi), log))
    return out


def fit_subgroup(
    fit_rows: list[tuple[ObservedRun, Scenario]], report_rows: list[tuple[ObservedRun, Scenario]]
) -> dict[str, Any]:
    """Presets on every row; the fit on `fit_rows` (slopes, leave-one-out choice, chord replays, guard); the
    reported rows replayed at the result. Errors are signed % of the measured mean."""
    t0, c0 = time.perf_counter(), time.process_time()
    meas = [_measured(r) for r, _ in fit_rows]
    base = [_logs(r, sc) for r, sc in fit_rows]
    out: dict[str, Any] = {"presets_fit_rows": [_errs(m, b) for m, b in zip(meas, base, strict=True)]}
    rep_meas = [_measured(r) for r, _ in report_rows]
    rep_base = [_logs(r, sc) for r, sc in report_rows]
    out["presets"] = [_errs(m, b) for m, b in zip(rep_meas, rep_base, strict=True)]
    terms = terms_for(fit_rows)
    out["terms"] = [t.path for t in terms]
    ladder = [[i for i in s if i < len(terms)] for s in LADDER]
    ladder = [s for k, s in enumerate(ladder) if s and s not in ladder[:k]]

    def probe(i: int, moves: np.ndarray, _probe: bool) -> np.ndarray:
        run, sc = fit_rows[i]
        return _logs(_short(run, PROBE_REQUESTS * (run.concurrency or 1)), _at(sc, terms, moves))

    rows = fl.linearise(terms, meas, probe, base)
    active, scores = fl.choose(rows, terms, ladder)
    out["loo"] = scores
    out["chosen"] = [terms[i].path for i in active]
    points = fl.chord(rows, terms, active, lambda m: [_logs(r, _at(sc, terms, m)) for r, sc in fit_rows])
    losses = [fl.loss(meas, logs) for _, logs in points]
    k, reasons = fl.pick(meas, points)
    if not active:
        reasons = ["no term chosen"]
    moves, logs = points[k]
    before = [_errs(m, b) for m, b in zip(meas, base, strict=True)]
    after = [_errs(m, lg) for m, lg in zip(meas, logs, strict=True)]
    out["points"] = [
        {"values": {t.path: t.value(float(x)) for t, x in zip(terms, m, strict=True)}, "loss": ls}
        for (m, _), ls in zip(points, losses, strict=True)
    ]
    if reasons:
        moves, after = np.zeros(len(terms)), before
    out["kept_preset"] = reasons
    out["values"] = {t.path: t.value(float(x)) for t, x in zip(terms, moves, strict=True)}
    out["in_sample"] = {"before": before, "after": after}
    if reasons:
        out["fitted"] = out["presets"]
    else:
        out["fitted"] = [
            _errs(m, _logs(r, _at(sc, terms, moves))) for m, (r, sc) in zip(rep_meas, report_rows, strict=True)
        ]
    out["wall_s"], out["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    return out


def cross_fit(groups_only: list[str] | None = None, per_subgroup: int = PER_SUBGROUP) -> dict[str, Any]:
    """Every subgroup of the (selected) engine + GPU groups: presets and the fit (see the module docstring)."""
    t0, c0 = time.perf_counter(), time.process_time()
    kept, skipped = expressible_rows(groups_only)
    out: dict[str, Any] = {"skipped": skipped, "expressible": len(kept), "per_subgroup": per_subgroup}
    out["split"] = "per subgroup, configurations sorted by (tp, isl, osl, clients), even positions fitted, odd reported"
    out["subgroups"] = {}
    for name, rows in sorted(subgroups(kept).items()):
        picked = spaced(rows, per_subgroup)
        fit_rows, report = picked[0::2], picked[1::2]
        g: dict[str, Any] = {"configs": len(rows), "models": sorted({str(r["model_path"]) for r, _ in rows})}
        g["fit_ids"] = [str(r["id"]) for r, _ in fit_rows]
        g["report_ids"] = [str(r["id"]) for r, _ in report]
        if len(fit_rows) < 2 or not report:
            g["not_fitted"] = "fewer than 3 configurations"
            out["subgroups"][name] = g
            continue
        g |= fit_subgroup(
            [(observed_row(r, sc), sc) for r, sc in fit_rows], [(observed_row(r, sc), sc) for r, sc in report]
        )
        out["subgroups"][name] = g
        print(f"{name}: {row_line(g)}", flush=True)
    out["wall_s"], out["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    return out


def row_line(g: dict[str, Any]) -> str:
    cells = " | ".join(f"{med(g['presets'], m):.1f}% -> {med(g['fitted'], m):.1f}%" for m in fl.METRICS)
    vals = ", ".join(
        f"{p.rsplit('.', 1)[-1].replace('_efficiency', '')} {v:.3g}" for p, v in g["values"].items() if p in g["chosen"]
    )
    kept = ", ".join(g["kept_preset"]) or "no"
    return f"{len(g['fitted'])} | {cells} | {vals or '-'} | {kept} | {g['cpu_s']:.0f}"


def cross_fit_table(res: dict[str, Any]) -> str:
    """Markdown: per subgroup, the reported (odd) rows only, presets -> fit on the even rows; per engine + GPU
    group and over all reported rows, the pooled medians."""
    lines = [
        "| subgroup | reported rows | TTFT | TPOT | E2E | freed terms (fitted values) | kept preset | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pooled: dict[str, tuple[list[dict[str, float]], list[dict[str, float]]]] = {}
    for name, g in res["subgroups"].items():
        if "fitted" not in g:
            lines.append(f"| {name} | - | not fitted ({g['not_fitted']}) | | | | | |")
            continue
        lines.append(f"| {name} | {row_line(g)} |")
        for key in (name.split(" / ")[0], "**all reported rows**"):
            p, f = pooled.setdefault(key, ([], []))
            p.extend(g["presets"])
            f.extend(g["fitted"])
    lines += ["", "| engine + GPU | reported rows | TTFT | TPOT | E2E |", "|---|---|---|---|---|"]
    for key in sorted(pooled, key=lambda k: (k.startswith("**"), k)):
        p, f = pooled[key]
        cells = " | ".join(f"{med(p, m):.1f}% -> {med(f, m):.1f}%" for m in fl.METRICS)
        lines.append(f"| {key} | {len(f)} | {cells} |")
    return "\n".join(lines)
