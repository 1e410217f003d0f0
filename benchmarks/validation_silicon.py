"""The aiconfigurator `silicon_sample.csv` closed-loop rows that servesim can express, replayed (used by
benchmarks/validation.py).

Each row is one measured configuration: a closed loop of concurrent clients, fixed `isl`/`osl`, one engine
(`backend`) on one GPU (`system`) in one layout, with the run's mean TTFT and TPOT. The row -> scenario
mapping is benchmarks/coverage.py's (imported, not copied): model, GPU, precision, TP / EP / attention-DP /
moe_tp, disaggregated prefill/decode pools, clients (`silicon_concurrency`), KV share. This harness adds the
engine preset of `backend` and the `vllm` scheduler, and replays each row under coverage.py's load protocol
(`coverage.load`, the InferenceX client: a `closed_loop` of the row's clients sending 10 x clients requests,
lengths uniform in [0.8 L, L]) with the recipe's streaming (`coverage.serving_engine`). Not replayed: rows
coverage.py cannot express, and closed loops of more than coverage.MAX_CLIENTS clients (run time). The CSV
repeats many measurements under several ids: rows are deduplicated by configuration (engine, GPU, model,
precision, layout, isl, osl, clients, and the measured means to 1 ms / 0.1 ms). Groups are engine + GPU (+
disagg); a group's configurations, sorted by (tp, isl, osl, clients), are replayed at up to `PER_GROUP` evenly
spaced positions; of those, even positions are fitted (up to `MAX_FIT_ROWS`) and odd ones reported — no error
is reported on a fitted configuration.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import coverage
from calibrate.fit_guard import median_abs_error
from calibrate.fit_run import fit_runs, fittable_paths, informed
from calibrate.observed import ObservedRun
from calibrate.replay import compare, replay_once
from sim.cluster.pools import pool_specs
from sim.config.scenario import Scenario, load_scenario
from sim.errors import ServesimError

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT.parent / "shared" / "data" / "ground-truth" / "aiconfigurator" / "silicon_sample.csv"
MAX_FIT_ROWS = 6  # rows per fit (each evaluation simulates all of them)
FIT_EVALS = 24  # evaluations per fit (a Sobol scan of the box, then least squares from the best point)
PER_GROUP = 16  # configurations replayed per engine + GPU (+ mode): run time on a shared 2-core machine
# The terms the silicon fit frees, per engine + GPU: few, physically named, each one that closed-loop means
# identify (benchmarks/VALIDATION.md, "Silicon cross-fit"). `memory_efficiency_scale`: the decode step's
# weight and KV reads, i.e. TPOT at every batch (sim/costmodel/engine.py). Left at the preset: compute and
# attention scales (session 5's fits ran compute to its 0.5 bound to buy TTFT, slowing every decode step of the
# held-out rows), `scheduler_s` and `allreduce_bw_scale` (undetermined by six rows in most groups, ran to their
# bounds), `frontend_s` (a probe freed it too: no gain held out, the guard rejected it where TTFT drove it).
# Bounds are the schema's `fit_bounds`.
SILICON_TERMS = ("serving_engine.memory_efficiency_scale",)
# TTFT stays out of the silicon objective: its gap is a missing mechanism, not a scale (VALIDATION.md)
WEIGHTS = {"ttft": 0.0, "tpot": 1.0, "e2e": 1.0}
GUARD = ("tpot", "e2e")  # keep the preset unless the fit rows' median |error| of these does not get worse
# Engine terms that only the `sarathi` scheduler reads (policies/context_hold.py: TensorRT-LLM's context holds and
# batch waiting, SGLang's receive interval): a row whose recipe sets one keeps coverage.py's scheduler.
SARATHI_HOOKS = ("attention_dp_balance", "batch_wait_timeout_iters", "scheduler_recv_interval")


def rank_chunks(data: dict[str, Any]) -> bool:
    """Whether the row runs SGLang's per-rank prompt chunks (`serving_engine.attention_dp_rank_chunks`, on in the
    `sglang` preset; policies/dp_chunks.py), which only `sarathi` plans: an SGLang engine with attention DP in
    some pool. On `vllm` a whole 8,192-token chunk would sit on one rank (session 15: two SGLang B200 disagg rows
    saturated in this replay only, once that rank's dense layers were priced at its own tokens, s15-dprank)."""
    cl = data.get("cluster") or {}
    pools = [cl, cl.get("prefill") or {}, cl.get("decode") or {}]
    engine = data.get("serving_engine") or {}
    on = engine.get("attention_dp_rank_chunks", engine.get("kind") == "sglang")
    return bool(on) and any(int(p.get("attention_dp") or 1) > 1 for p in pools)


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


def scenario_for(row: pd.Series) -> tuple[Scenario | None, str]:
    """The row's scenario, or None and why it cannot be expressed. The mapping is benchmarks/coverage.py's
    (model, GPU, precision, layout with EP / attention-DP / moe_tp, disaggregated pools, clients, KV share);
    this harness adds the engine's preset (`serving_engine.kind` from `backend`), the InferenceX recipe's knobs as
    coverage.simulate applies them (`coverage_recipes.recipe_terms`: SGLang's receive interval, TensorRT-LLM batch
    waiting, token budgets), and vLLM V1's scheduler: one budget shared by decodes and chunked prefills, coverage's
    (8,192 tokens or the recipe's, times the attention-DP ranks where `coverage.rank_budget` says so); SGLang
    chunks alike; TensorRT-LLM rows whose recipe coverage reads keep its `trtllm` scheduler (whole prompts within
    the recipe's max_num_tokens, `coverage_recipes_trt`). A row whose engine section sets a hook only `sarathi`
    reads (`SARATHI_HOOKS`) keeps it. An agg export row whose tp_size is a disaggregated deployment's GPU total is
    simulated as that deployment, as coverage.simulate does (`coverage_gpu_total.as_disagg`, branch s13-rows)."""
    row = coverage.as_disagg(row)
    why = coverage.expressible(row)
    if why is not None:
        return None, f"not expressible ({why.split(':')[0][:40]})"
    c = coverage.concurrency(row)
    if c > coverage.MAX_CLIENTS:
        return None, f"more than {coverage.MAX_CLIENTS} clients (expressible, not simulated)"
    _, prompt, _ = coverage.load(row)  # the replay issues `observed_row`'s requests; this sizes the workload
    lengths = {"kind": "fixed", "prompt": int(row["isl"]), "output": int(row["osl"])}
    workload = {"num_requests": len(prompt), "arrival": {"kind": "closed_loop", "concurrency": c}, "lengths": lengths}
    data = coverage.scenario(row, workload)
    if data["scheduler"]["kind"] == "sglang":  # (coverage's `sglang` kind: this fit keeps its sarathi reading)
        s = data["scheduler"]
        data["scheduler"] = {
            "kind": "sarathi",
            "max_num_seqs": s["max_running_requests"],
            "token_budget": s["chunked_prefill_size"],
        }
    data["serving_engine"] = coverage.serving_engine(row)
    if coverage.source(row) == "inferencex" and row["mode"] == "agg":  # the recipe's knobs, as coverage.simulate
        terms, sched = coverage.recipe_terms(row, c)
        data["serving_engine"] |= terms
        if sched and data["scheduler"]["kind"] == "sarathi":  # a recipe budget (per rank: `rank_budget`)
            dp = data["cluster"].get("attention_dp", 1)
            data["scheduler"] = coverage.rank_budget({**data["scheduler"], **sched}, str(row["backend"]), dp)
    trtllm = data["scheduler"]["kind"] == "trtllm"  # TensorRT-LLM's own scheduler (coverage_recipes_trt) stays
    if not trtllm and not any(k in data["serving_engine"] for k in SARATHI_HOOKS) and not rank_chunks(data):
        budget = int(data["scheduler"]["token_budget"])  # coverage's instance budget (recipe, attention-DP ranks)
        data["scheduler"] = {"kind": "vllm", "max_num_seqs": max(256, c), "max_num_batched_tokens": budget}
    try:
        sc = load_scenario(data)
        pool_specs(sc)
    except ServesimError as e:
        return None, f"schema ({str(e).split(': ', 1)[-1][:40]})"
    return sc, ""


def fit_terms(pairs: list[tuple[ObservedRun, Scenario]]) -> list[tuple[str, float, float]]:
    """SILICON_TERMS with the schema's bounds, those the rows inform (`calibrate.fit_run.informed`)."""
    bounds = {path: (lo, hi) for path, lo, hi in fittable_paths(pairs[0][1])}
    return [(p, *bounds[p]) for p in SILICON_TERMS if informed(p, pairs)]


def observed_row(row: pd.Series, sc: Scenario) -> ObservedRun:
    """The row as a means-only observed run of coverage.py's load (`coverage.load`: the requests the InferenceX
    client sent, in order): every request carries the run's mean TTFT and TPOT."""
    row = coverage.as_disagg(row)  # the clients of a GPU-total row are coverage's (`scenario_for`)
    _, prompt, output = coverage.load(row)
    ttft, tpot = row["silicon_ttft_ms"] / 1e3, row["silicon_tpot_ms"] / 1e3
    return ObservedRun(
        f"{CSV.name}:{row['id']}",
        "silicon",
        prompt,
        output,
        np.full(len(prompt), ttft),
        ttft + tpot * (output - 1),
        concurrency=coverage.concurrency(row),
        means_only=True,
        meta={"backend": row["backend"], "system": row["system"], "model": row["model_path"]},
    )


def _replay(run: ObservedRun, sc: Scenario) -> dict[str, Any]:
    simd = replay_once(run, sc)
    c = compare(run, simd)
    return {m: c[m]["mean"] for m in ("ttft", "tpot", "e2e")} | {"completed": simd.completed, "requests": len(run)}


def group_label(row: pd.Series) -> str:
    """The row's engine + GPU (+ disagg) group, as the tables name it (e.g. "vllm h200_sxm", "sglang gb200 disagg")."""
    mode = "" if row["mode"] == "agg" else " disagg"
    return f"{row['backend']} {row['system']}{mode}"


def expressible_rows(
    groups_only: list[str] | None = None,
) -> tuple[list[tuple[pd.Series, Scenario]], dict[str, int]]:
    """The deduplicated rows (see the module docstring) with their scenarios, sorted by engine, GPU, mode, tp,
    isl, osl, clients; and the count of rows not replayed, by reason. `groups_only`: rows of these groups only
    (`group_label`; the others are not mapped, which saves most of the time on a subset)."""
    df = pd.read_csv(CSV).assign(  # the same measurement, re-listed (rounded) under other ids/versions
        ttft_key=lambda d: d["silicon_ttft_ms"].round(0), tpot_key=lambda d: d["silicon_tpot_ms"].round(1)
    )
    df = df.drop_duplicates(subset=[*CONFIG, "ttft_key", "tpot_key"], keep="first")
    df = df.sort_values(["backend", "system", "mode", "tp_size", "isl", "osl", "batch_size"], kind="stable")
    kept: list[tuple[pd.Series, Scenario]] = []
    skipped: dict[str, int] = {}
    for _, row in df.iterrows():
        if groups_only is not None and group_label(row) not in groups_only:
            continue
        sc, why = scenario_for(row)
        if sc is None:
            skipped[why] = skipped.get(why, 0) + 1
        else:
            kept.append((row, sc))
    return kept, skipped


def silicon(
    quick: bool = False,
    out_dir: Path | None = None,
    per_group: int = PER_GROUP,
    fit: bool = True,
    groups_only: list[str] | None = None,
    terms: list[tuple[str, float, float]] | None = None,
) -> dict[str, Any]:
    """Presets on up to `per_group` configurations of each engine + GPU (+ mode), an even/odd split for the fit.
    `groups_only`: these groups only (names as in the tables, e.g. "vllm h200_sxm"); `terms`: the fitted terms
    (default `fit_terms`: SILICON_TERMS, or all the scenario's `fit_default` ones with `terms=[]`)."""
    kept, skipped = expressible_rows()
    groups: dict[str, list[tuple[pd.Series, Scenario]]] = {}
    for row, sc in kept:
        groups.setdefault(group_label(row), []).append((row, sc))
    out: dict[str, Any] = {"skipped": skipped, "expressible": len(kept), "per_group": per_group, "groups": {}}
    for name, rows in sorted(groups.items()):
        if groups_only is not None and name not in groups_only:
            continue
        total = len(rows)
        cap = 8 if quick else per_group
        if total > cap:  # evenly spaced over the sorted configurations (deterministic)
            rows = [rows[int(k * total / cap)] for k in range(cap)]
        presets = {str(r["id"]): _replay(observed_row(r, sc), sc) for r, sc in rows}
        fit_rows = rows[0::2][:MAX_FIT_ROWS]  # alternate configurations: even positions fitted ...
        report = rows[1::2]  # ... odd ones reported (never a fitted one)
        g: dict[str, Any] = {"configs": total, "presets": presets, "fit_rows": [str(r["id"]) for r, _ in fit_rows]}
        g["fitted"] = {}
        if fit_rows and report and fit:
            pairs = [(observed_row(r, sc), sc) for r, sc in fit_rows]
            explicit = fit_terms(pairs) if terms is None else (terms or None)
            evals = 12 if quick else FIT_EVALS
            res = fit_runs(pairs, explicit, max_evals=evals, guard=GUARD, weights=WEIGHTS)
            g["params"] = res.values
            g["start"] = {p.path: p.x0 for p in res.params}
            g["identifiability"] = res.diagnosis
            g["kept_preset"] = res.kept_preset
            if res.rejected:  # what the search found before the keep-the-preset rule (diagnosis)
                g["rejected"] = {"values": res.rejected["values"], "runs_loss_after": res.rejected["runs_loss_after"]}
                g["rejected"] |= {m: median_abs_error(res.rejected["after"], m) for m in ("ttft", "tpot", "e2e")}
            g["fit_wall_s"] = res.wall_s
            g["in_sample"] = {  # the fitted rows' own median |error| at the start values and at the search's best
                "before": {m: median_abs_error(res.before, m) for m in ("ttft", "tpot", "e2e")},
                "after": {m: median_abs_error(res.after, m) for m in ("ttft", "tpot", "e2e")},
                "runs_loss_before": res.runs_cost_before,
                "runs_loss_after": res.runs_cost_after,
            }
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
    if any(g["fitted"] for g in res["groups"].values()):
        lines += ["", heldout_table(res)]
    return "\n".join(lines)


def heldout_table(res: dict[str, Any]) -> str:
    """Markdown: per group, the reported (odd) rows only, presets -> fitted on the same rows; the fitted rows'
    own median |error| before -> after; the fitted values and whether the preset was kept."""
    lines = [
        "**Held-out (odd) rows only: presets -> fit on the even rows** (median |error| of the mean per row)",
        "",
        "| engine + GPU | odd rows | TTFT | TPOT | E2E | fit rows: TPOT | E2E | fitted terms | kept preset |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    pooled_p: dict[str, Any] = {}
    pooled_f: dict[str, Any] = {}
    for name, g in res["groups"].items():
        f = g["fitted"]
        if not f:
            continue
        p = {k: g["presets"][k] for k in f}  # the same rows
        pooled_p |= {f"{name}/{k}": v for k, v in p.items()}
        pooled_f |= {f"{name}/{k}": v for k, v in f.items()}
        cells = " | ".join(f"{_med(p, m):.1f}% -> {_med(f, m):.1f}%" for m in ("ttft", "tpot", "e2e"))
        ins = g.get("in_sample", {})
        b, a = ins.get("before", {}), ins.get("after", {})
        in_cells = " | ".join(f"{b.get(m, math.nan):.1f}% -> {a.get(m, math.nan):.1f}%" for m in ("tpot", "e2e"))
        vals = ", ".join(f"{k.rsplit('.', 1)[-1]} {v:.3g}" for k, v in g.get("params", {}).items())
        kept = ", ".join(g.get("kept_preset", [])) or "no"
        lines.append(f"| {name} | {len(f)} | {cells} | {in_cells} | {vals} | {kept} |")
    cells = " | ".join(f"{_med(pooled_p, m):.1f}% -> {_med(pooled_f, m):.1f}%" for m in ("ttft", "tpot", "e2e"))
    lines.append(f"| **all reported rows** | {len(pooled_f)} | {cells} | | | | |")
    return "\n".join(lines)
