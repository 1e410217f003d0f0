"""The silicon cross-fit per engine + GPU (+ disagg) + model: a few physically named engine terms, fitted on some
configurations of one model on one engine and GPU, reported on the others (`calibrate.fit_linear`).

    python benchmarks/validation.py --silicon-cross-fit [--groups "vllm h200_sxm" ...] [--out FILE]

Subgroups: the rows of one engine + GPU (+ disagg) and one model (`model_path`); a model with fewer than
`MIN_MODEL_ROWS` expressible configurations there is pooled with the group's other such models of its family (dense
or MoE: `ModelSpec.num_moe_layers`). Split (as `validation_silicon`): a subgroup's configurations, sorted by (tp,
isl, osl, clients), at up to `PER_SUBGROUP` evenly spaced positions; even positions fitted, odd ones reported; no
error is reported on a fitted configuration. A subgroup of fewer than 3 replayed configurations is not fitted.

The terms (`calibrate.fit_means.TERMS`, each the schema's `fit_bounds`; the ladder `LADDER` is nested, decode
level first; the fit itself is `calibrate.fit_means.fit_means`, which `calibrate fit-run` uses on means-only runs):
`memory_efficiency_scale` (decode step's weight and KV reads: TPOT's level), `cost_model.layer_overhead_s`
(fixed GPU time per layer per step: TPOT's intercept at small batch), `compute_efficiency_scale` (prefill
FLOP/s: TTFT's slope in isl), `frontend_s` (per request: TTFT's intercept). How many of them are freed is
chosen per subgroup by leave-one-out over its fitted rows (`fit_linear.choose`); the fitted point is replayed
and kept only where it improves the fitted rows' loss and their median |error| of TPOT and E2E, and of TTFT too
where the compute scale or the front-end time is free (`fit_linear.guarded`, `calibrate.fit_guard.worse`); a
freed term the fit puts on its bound keeps its preset and the others are refitted without it (`fit_linear.fit`).

Run length: presets, fitted points and reported rows replay the InferenceX load in full (10 x clients requests);
the slope replays (`fit_linear.linearise`, one per term per fitted row, and their own base) replay the first
`calibrate.fit_means.PROBE_REQUESTS` x clients of them: a slope needs the step's response, not the run's last digit.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from benchmarks.validation_silicon import CONFIG, expressible_rows, group_label, observed_row
from calibrate import fit_linear as fl
from calibrate import fit_means as fm
from calibrate.observed import ObservedRun
from calibrate.time_cap import Capped, cpu_cap
from sim.config.scenario import Scenario

PER_SUBGROUP = 8  # configurations replayed per subgroup: up to 4 fitted, 4 reported
MIN_MODEL_ROWS = 6  # a model with fewer configurations in its engine + GPU group is pooled with its family
# CPU seconds one subgroup's fit may use before it is stopped and reported as capped ("never a hang"): the longest
# subgroup that finished in session 11's all-groups run used 143 CPU s (TensorRT-LLM B200 disagg DeepSeek fp8;
# VALIDATION.md, "Silicon cross-fit per engine and GPU"), so 300 s caps only what is at least twice that.
CAP_CPU_S = 300.0


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


def _errs(cmp: dict[str, Any]) -> dict[str, float]:
    """Signed error (%) of each metric's replayed mean (`replay.compare`)."""
    return {m: float(cmp[m]["mean"]["error_pct"]) for m in fl.METRICS}


def med(errs: list[dict[str, float]], m: str) -> float:
    v = [abs(e[m]) for e in errs if math.isfinite(e[m])]
    return statistics.median(v) if v else math.nan


def fit_subgroup(
    fit_rows: list[tuple[ObservedRun, Scenario]], report_rows: list[tuple[ObservedRun, Scenario]]
) -> dict[str, Any]:
    """Presets on every row; the fit on `fit_rows` (`calibrate.fit_means.fit_means`: slopes, leave-one-out choice,
    chord replays, guard); the reported rows replayed at the result. Errors are signed % of the measured mean."""
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {"presets": [_errs(fm.replay_cmp(r, sc)[1]) for r, sc in report_rows]}
    terms = fm.terms_for(fit_rows)
    out["terms"] = [t.path for t in terms]
    if terms:
        res = fm.fit_means(fit_rows)
        d = res.diagnosis
        out |= {"loo": d["loo"], "chosen": d["chosen"], "guarded": d["guarded"], "points": d["points"]}
        out |= {k: d[k] for k in ("reading", "readings_tried", "reading_rejected", "ttft_retry")}
        before, after = [_errs(c) for c in res.before], [_errs(c) for c in res.after]
        out |= {"at_bound_kept_preset": res.at_bounds, "kept_preset": res.kept_preset, "values": res.values}
    else:  # nothing these rows inform: the preset
        before = after = [_errs(fm.replay_cmp(r, sc)[1]) for r, sc in fit_rows]
        out |= {"loo": {}, "chosen": [], "guarded": list(fl.SCORED), "points": [], "at_bound_kept_preset": []}
        out |= {"kept_preset": ["no term chosen"], "values": {}}
    out["presets_fit_rows"] = before
    out["in_sample"] = {"before": before, "after": after}
    if out["kept_preset"]:
        out["fitted"] = out["presets"]
    else:
        out["fitted"] = [_errs(fm.replay_cmp(r, fm.fitted(sc, res))[1]) for r, sc in report_rows]
    out["wall_s"], out["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    return out


def cross_fit(
    groups_only: list[str] | None = None,
    per_subgroup: int = PER_SUBGROUP,
    cap_s: float | None = CAP_CPU_S,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every subgroup of the (selected) engine + GPU groups: presets and the fit (see the module docstring). A
    subgroup whose fit uses more than `cap_s` CPU seconds is stopped and recorded as `capped` (no numbers), and
    the run goes on; `progress` gets the results so far after each subgroup (e.g. to write them out)."""
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
        c1 = time.process_time()
        try:
            with cpu_cap(cap_s):
                g |= fit_subgroup(
                    [(observed_row(r, sc), sc) for r, sc in fit_rows], [(observed_row(r, sc), sc) for r, sc in report]
                )
        except Capped as e:
            g["capped"] = f"{e} while replaying {fm.REPLAYING.get('now', '-')}"
            g["cpu_s"] = time.process_time() - c1
        out["subgroups"][name] = g
        print(f"{name}: {row_line(g) if 'fitted' in g else 'CAPPED: ' + g['capped']}", flush=True)
        if progress is not None:
            progress(out)
    out["wall_s"], out["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    return out


def row_line(g: dict[str, Any]) -> str:
    cells = " | ".join(f"{med(g['presets'], m):.1f}% -> {med(g['fitted'], m):.1f}%" for m in fl.METRICS)
    vals = ", ".join(
        f"{p.rsplit('.', 1)[-1].replace('_efficiency', '')} {v:.3g}" for p, v in g["values"].items() if p in g["chosen"]
    )
    reading = [f"{p.rsplit('.', 1)[-1]} {v}" for p, v in g.get("reading", {}).items()]
    vals = ", ".join([*reading, *([vals] if vals else [])])
    kept = ", ".join(g["kept_preset"]) or "no"
    bound = [p.rsplit(".", 1)[-1].replace("_efficiency", "") for p in g.get("at_bound_kept_preset", [])]
    kept += f" (at bound, preset kept: {', '.join(bound)})" if bound else ""
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
            why = g["capped"] if "capped" in g else g["not_fitted"]
            lines.append(f"| {name} | - | not fitted ({why}) | | | | | |")
            continue
        lines.append(f"| {name} | {row_line(g)} |")
        for key in (name.split(" / ")[0], f"**{name.split()[0]}**", "**all reported rows**"):
            p, f = pooled.setdefault(key, ([], []))
            p.extend(g["presets"])
            f.extend(g["fitted"])
    lines += ["", "| engine + GPU | reported rows | TTFT | TPOT | E2E |", "|---|---|---|---|---|"]
    for key in sorted(pooled, key=lambda k: (k.startswith("**"), k)):
        p, f = pooled[key]
        cells = " | ".join(f"{med(p, m):.1f}% -> {med(f, m):.1f}%" for m in fl.METRICS)
        lines.append(f"| {key} | {len(f)} | {cells} |")
    fitted = [g for g in res["subgroups"].values() if "fitted" in g]
    sub = {m: [(med(g["presets"], m), med(g["fitted"], m)) for g in fitted] for m in fl.METRICS}
    cells = ", ".join(
        f"{m.upper()} {statistics.median(p for p, _ in v):.1f} -> {statistics.median(f for _, f in v):.1f} %"
        for m, v in sub.items()
        if v
    )
    capped = [n for n, g in res["subgroups"].items() if "capped" in g]
    head = f"{len(fitted)} fitted subgroups; median over subgroups of the reported rows' median |error|"
    lines += ["", f"{head}: {cells}"]
    lines.append(f"capped subgroups ({len(capped)}): {', '.join(capped) or 'none'}")
    return "\n".join(lines)
